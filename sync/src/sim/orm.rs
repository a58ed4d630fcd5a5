//! The simulator's ORM methods: what `execute_kw` and `/json/2/<model>/<method>` reach.

use serde_json::{Map, Value, json};

use super::store::{Rel, SimError, Tables, is_computed, matches};

/// Methods bound to the model rather than to records (`@api.model`): no ids come first.
const MODEL_METHODS: &[&str] = &[
    "search_read",
    "search",
    "search_count",
    "create",
    "load",
    "context_get",
    "fields_get",
];

/// Positional parameter names after the ids, as the Python methods declare them.
fn positional_names(method: &str) -> &'static [&'static str] {
    match method {
        "search_read" => &["domain", "fields", "offset", "limit", "order"],
        "search" => &["domain", "offset", "limit", "order"],
        "search_count" => &["domain"],
        "create" => &["vals_list"],
        "load" => &["fields", "data"],
        "read" => &["fields"],
        "write" => &["vals"],
        _ => &[],
    }
}

/// Whether the method takes record ids first.
pub fn is_multi(method: &str) -> bool {
    !MODEL_METHODS.contains(&method)
}

/// Turns JSON-RPC positional args into named ones (after the ids).
pub fn name_positional(
    method: &str,
    args: &[Value],
    kwargs: &mut Map<String, Value>,
) -> Result<(), SimError> {
    let names = positional_names(method);
    if args.len() > names.len() {
        return Err(SimError {
            name: "builtins.TypeError",
            message: format!(
                "{method}() takes {} positional arguments but {} were given",
                names.len(),
                args.len()
            ),
        });
    }
    for (name, value) in names.iter().zip(args) {
        kwargs.insert((*name).to_owned(), value.clone());
    }
    Ok(())
}

/// Creates one record, and the children its one2many fields create (`[0, 0, vals]`
/// commands), in the same call as Odoo does.
fn create_one(tables: &mut Tables, model: &str, vals: Value, now: &str) -> Result<i64, SimError> {
    let mut vals = vals
        .as_object()
        .cloned()
        .ok_or_else(|| SimError::value("create() takes dicts"))?;
    let mut children = Vec::new();
    for key in vals.keys().cloned().collect::<Vec<_>>() {
        if let Rel::One2many(target, inverse) = tables.relation(model, &key) {
            let commands = vals.remove(&key).unwrap_or_default();
            for command in commands.as_array().into_iter().flatten() {
                match command.as_array().map(Vec::as_slice) {
                    Some([code, _, child]) if code.as_i64() == Some(0) => {
                        children.push((target, inverse, child.clone()));
                    }
                    _ => {
                        return Err(SimError::value(format!(
                            "{model}.{key}: only [0, 0, vals] commands are accepted on create, got {command}"
                        )));
                    }
                }
            }
        }
    }
    let fields: Vec<String> = vals.keys().cloned().collect();
    check_fields(tables, model, &fields, Access::Write)?;
    let id = tables.next_id(model);
    // Defaults Odoo fills in on create.
    match model {
        "stock.picking" => {
            vals.entry("state").or_insert_with(|| json!("draft"));
            vals.entry("name")
                .or_insert_with(|| json!(format!("WH/SIM/{id:05}")));
        }
        "stock.move" => {
            vals.entry("state").or_insert_with(|| json!("draft"));
            vals.entry("quantity").or_insert_with(|| json!(0.0));
            vals.entry("picked").or_insert_with(|| json!(false));
        }
        // A product's unit is Units unless given (`product.template._get_default_uom_id`).
        "product.product" => {
            vals.entry("uom_id").or_insert_with(|| json!(1));
            vals.entry("tracking").or_insert_with(|| json!("none"));
            vals.entry("active").or_insert_with(|| json!(true));
        }
        _ => {}
    }
    tables.insert(model, id, vals, now);
    for (target, inverse, mut child) in children {
        if let Some(c) = child.as_object_mut() {
            c.insert(inverse.into(), json!(id));
        }
        create_one(tables, target, child, now)?;
    }
    Ok(id)
}

/// A call as the ORM sees it.
pub struct OrmCall<'a> {
    pub model: &'a str,
    pub method: &'a str,
    pub ids: Vec<i64>,
    pub kwargs: Map<String, Value>,
    pub context: Map<String, Value>,
    /// Transaction start, `YYYY-MM-DD HH:MM:SS`.
    pub now: &'a str,
}

fn allowed_companies(context: &Map<String, Value>) -> Option<Vec<i64>> {
    context
        .get("allowed_company_ids")?
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
}

fn visible(rec: &Map<String, Value>, companies: &Option<Vec<i64>>) -> bool {
    match (companies, rec.get("company_id").and_then(Value::as_i64)) {
        (Some(allowed), Some(company)) => allowed.contains(&company),
        _ => true,
    }
}

/// Whether fields are read or written (Odoo words the refusal differently).
#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
}

fn check_fields(
    tables: &Tables,
    model: &str,
    fields: &[String],
    access: Access,
) -> Result<(), SimError> {
    let sample_has = |f: &str| {
        tables
            .table(model)
            .and_then(|t| t.values().next())
            .is_none_or(|r| r.contains_key(f))
    };
    for f in fields {
        // A field the version removed is unknown even if a record still carries it.
        let known = !tables.removed(model, f)
            && (f == "id"
                || f == "display_name"
                || tables.relation(model, f) != Rel::Plain
                || is_computed(model, f)
                || sample_has(f)
                || tables.has_field(model, f));
        if !known {
            // Odoo's own wording: `create`/`write` say "in", reads say "on model".
            return Err(SimError::value(match access {
                Access::Write => format!("Invalid field '{f}' in '{model}'"),
                Access::Read => format!("Invalid field '{f}' on model '{model}'"),
            }));
        }
    }
    Ok(())
}

/// Refuses a domain naming a field the version removed, before any record is looked at
/// (Odoo checks the domain against the model, not against the rows).
fn check_domain(tables: &Tables, model: &str, domain: &[Value]) -> Result<(), SimError> {
    for term in domain {
        let Some(path) = term.get(0).and_then(Value::as_str) else {
            continue;
        };
        let field = path.split('.').next().unwrap_or(path);
        if tables.removed(model, field) {
            return Err(SimError::value(format!(
                "Invalid field {model}.{field} in leaf {term}"
            )));
        }
    }
    Ok(())
}

fn render(
    tables: &Tables,
    model: &str,
    rec: &Map<String, Value>,
    fields: &Option<Vec<String>>,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), rec.get("id").cloned().unwrap_or(Value::Null));
    let names: Vec<String> = match fields {
        Some(f) => f.clone(),
        None => rec.keys().cloned().collect(),
    };
    for f in names {
        let value = if f == "display_name" {
            json!(tables.display_name(
                model,
                rec.get("id").and_then(Value::as_i64).unwrap_or_default()
            ))
        } else {
            tables.read_field(model, rec, &f)
        };
        out.insert(f, value);
    }
    Value::Object(out)
}

fn string_list(v: Option<&Value>, what: &str) -> Result<Option<Vec<String>>, SimError> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SimError::value(format!("{what} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(SimError::value(format!(
            "{what} must be a list, got {other}"
        ))),
    }
}

/// Searches ids, ordered, with offset and limit.
fn search(tables: &Tables, call: &OrmCall<'_>) -> Result<Vec<i64>, SimError> {
    let domain = match call.kwargs.get("domain") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(d)) => d.clone(),
        Some(other) => {
            return Err(SimError::value(format!(
                "domain must be a list, got {other}"
            )));
        }
    };
    check_domain(tables, call.model, &domain)?;
    let companies = allowed_companies(&call.context);
    // Archived records are left out unless the domain asks about `active` or the context
    // turns `active_test` off.
    let active_test = call.context.get("active_test") != Some(&Value::Bool(false))
        && !domain
            .iter()
            .any(|t| t.get(0).and_then(Value::as_str) == Some("active"));
    // Like PostgreSQL with its primary key index: a conjunctive domain with `id > n` starts
    // at n + 1, and `order id` with a limit stops once the page is full. Keyset pages of a
    // large table then cost their size, not the table's.
    let conjunctive = !domain
        .iter()
        .any(|t| matches!(t, Value::String(op) if op == "|" || op == "!"));
    let start = domain
        .iter()
        .filter(|_| conjunctive)
        .filter_map(|t| {
            let leaf = t.as_array()?;
            (leaf.len() == 3 && leaf[0] == "id" && leaf[1] == ">").then(|| leaf[2].as_i64())?
        })
        .max()
        .map_or(i64::MIN, |n| n.saturating_add(1));
    let order_text = call
        .kwargs
        .get("order")
        .and_then(Value::as_str)
        .unwrap_or("id")
        .trim();
    let by_id = order_text == "id" || order_text.eq_ignore_ascii_case("id asc");
    let offset = call
        .kwargs
        .get("offset")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let limit = call
        .kwargs
        .get("limit")
        .and_then(Value::as_u64)
        .map(|l| l as usize);
    let enough = limit.filter(|_| by_id).map(|l| offset + l);
    let mut found = Vec::new();
    for (id, rec) in tables
        .table(call.model)
        .into_iter()
        .flat_map(|t| t.range(start..))
    {
        if enough.is_some_and(|n| found.len() >= n) {
            break;
        }
        if active_test && rec.get("active") == Some(&Value::Bool(false)) {
            continue;
        }
        if visible(rec, &companies) && matches(tables, call.model, rec, &domain)? {
            found.push(*id);
        }
    }
    let order = order_text.to_owned();
    let mut keys = order
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            let mut parts = k.split_whitespace();
            let field = parts.next().unwrap_or("id").to_owned();
            let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
            (field, desc)
        })
        .collect::<Vec<_>>();
    if keys.is_empty() {
        keys.push(("id".into(), false));
    }
    for (field, _) in &keys {
        if field != "id"
            && tables
                .table(call.model)
                .and_then(|t| t.values().next())
                .is_some_and(|r| !r.contains_key(field.as_str()))
        {
            return Err(SimError::value(format!("Invalid field {field:?} in order")));
        }
    }
    let table = tables.table(call.model);
    found.sort_by(|a, b| {
        for (field, desc) in &keys {
            let get = |id: &i64| -> Value {
                if field == "id" {
                    json!(id)
                } else {
                    table
                        .and_then(|t| t.get(id))
                        .and_then(|r| r.get(field.as_str()))
                        .cloned()
                        .unwrap_or(Value::Null)
                }
            };
            let (x, y) = (get(a), get(b));
            let o = match (&x, &y) {
                (Value::String(p), Value::String(q)) => p.cmp(q),
                _ => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
            };
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(found
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect())
}

/// Runs one generic ORM method; `None` when the method is not a generic one.
pub fn execute(tables: &mut Tables, call: &OrmCall<'_>) -> Option<Result<Value, SimError>> {
    Some(match call.method {
        "search_read" => (|| {
            let fields = string_list(call.kwargs.get("fields"), "fields")?;
            if let Some(f) = &fields {
                check_fields(tables, call.model, f, Access::Read)?;
            }
            let ids = search(tables, call)?;
            Ok(Value::Array(
                ids.iter()
                    .filter_map(|id| tables.get(call.model, *id))
                    .map(|r| render(tables, call.model, r, &fields))
                    .collect(),
            ))
        })(),
        "search" => search(tables, call).map(|ids| json!(ids)),
        "search_count" => search(tables, call).map(|ids| json!(ids.len())),
        "read" => (|| {
            let fields = string_list(call.kwargs.get("fields"), "fields")?;
            if let Some(f) = &fields {
                check_fields(tables, call.model, f, Access::Read)?;
            }
            // Missing ids are left out, not an error.
            Ok(Value::Array(
                call.ids
                    .iter()
                    .filter_map(|id| tables.get(call.model, *id))
                    .map(|r| render(tables, call.model, r, &fields))
                    .collect(),
            ))
        })(),
        "write" => (|| {
            let vals = call
                .kwargs
                .get("vals")
                .and_then(Value::as_object)
                .ok_or_else(|| SimError {
                    name: "builtins.TypeError",
                    message: "write() missing 1 required positional argument: 'vals'".into(),
                })?;
            let fields: Vec<String> = vals.keys().cloned().collect();
            check_fields(tables, call.model, &fields, Access::Write)?;
            for id in &call.ids {
                if tables.get(call.model, *id).is_none() {
                    return Err(SimError::missing(format!(
                        "Record does not exist or has been deleted.\n(Record: {}({id},), User: 2)",
                        call.model
                    )));
                }
            }
            for id in &call.ids {
                let rec = tables
                    .table_mut(call.model)
                    .get_mut(id)
                    .expect("checked above");
                for (k, v) in vals {
                    rec.insert(k.clone(), v.clone());
                }
                rec.insert("write_date".into(), json!(call.now));
            }
            Ok(Value::Bool(true))
        })(),
        "create" => (|| {
            let list = match call.kwargs.get("vals_list") {
                Some(Value::Array(items)) => items.clone(),
                Some(v @ Value::Object(_)) => vec![v.clone()],
                _ => {
                    return Err(SimError {
                        name: "builtins.TypeError",
                        message: "create() missing 1 required positional argument: 'vals_list'"
                            .into(),
                    });
                }
            };
            let mut ids = Vec::new();
            for vals in list {
                ids.push(create_one(tables, call.model, vals, call.now)?);
            }
            Ok(json!(ids))
        })(),
        "context_get" => Ok(json!({"lang": "en_US", "tz": "Europe/Brussels", "uid": 2})),
        "fields_get" => {
            // The fields the model declares and its records hold, typed from their values
            // (and the relations); never a field the version removed.
            let mut out = Map::new();
            let sample = tables.table(call.model).and_then(|t| t.values().next());
            for name in tables.field_names(call.model) {
                let value = sample.and_then(|r| r.get(&name));
                let kind = match (tables.relation(call.model, &name), value) {
                    (Rel::Many2one(_), _) => "many2one",
                    (Rel::One2many(..), _) => "one2many",
                    (_, Some(Value::Bool(_))) => "boolean",
                    (_, Some(Value::Number(n))) if n.is_i64() => "integer",
                    (_, Some(Value::Number(_))) => "float",
                    _ => "char",
                };
                out.insert(name, json!({"type": kind}));
            }
            Ok(Value::Object(out))
        }
        _ => return None,
    })
}

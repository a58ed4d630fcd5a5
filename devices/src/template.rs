//! Site label templates: ZPL written by the site, with Jinja placeholders (minijinja), used
//! instead of a built-in layout of the same name.
//!
//! A directory holds `<template>.zpl` files — `product.zpl`, `location.zpl`, `lot.zpl`,
//! `sscc.zpl`, `delivery.zpl`, `test.zpl`; a template without a file keeps its built-in
//! layout. Each placeholder is written through the ZPL field escaper ([`zpl::escape_field`]):
//! there is no way to print a value raw (`|safe` changes nothing), so no product or partner
//! name can carry a printer command. The escaped form needs `^FH_` in front of its `^FD`,
//! which loading checks for every field with a placeholder.
//!
//! The values are those of [`Label::context`]: the label's fields, the size, `copies`, and
//! the barcode data ready for ZPL (`gs1_128`, `gs1_datamatrix`, `gs1_text`, `code128`,
//! `ean13`). A typo in a name is an error, not an empty field: every template is rendered
//! once with sample data when it is loaded, so such mistakes stop the start with the file
//! and line named.
//!
//! ```text
//! ^XA^CI28^PW{{ width_dots }}
//! ^FO30,30^A0N,40,40^FH_^FD{{ name }}^FS
//! {% if ean13 %}^FO30,100^BY3^BEN,120,Y,N^FH_^FD{{ ean13 }}^FS{% endif %}
//! ^XZ
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};

use crate::label::{Label, LabelError};
use crate::zpl::{self, LabelSize};

/// The templates a site can replace.
pub const NAMES: [&str; 6] = ["product", "location", "lot", "sscc", "delivery", "test"];

/// Instructions one label may take (a built-in-sized template takes a few hundred).
const FUEL: u64 = 200_000;

/// Why a template directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Dir(String),
}

/// The site's templates (none: every label uses its built-in layout). Cheap to clone.
#[derive(Clone, Default)]
pub struct Templates {
    env: Option<Arc<Environment<'static>>>,
    /// Template name → file it came from.
    files: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("files", &self.files)
            .finish()
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Printing an unknown name fails; testing it (`{% if x %}`) does not.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // A label is a few dozen fields: a template that loops far beyond that is a mistake, and
    // must not hold the spool (it fails with "out of fuel" instead).
    env.set_fuel(Some(FUEL));
    env.set_formatter(|out, _state, value| {
        if value.is_none() || value.is_undefined() {
            return Ok(());
        }
        let text = match value.as_str() {
            Some(s) => zpl::escape_field(s),
            None => zpl::escape_field(&value.to_string()),
        };
        out.write_str(&text)?;
        Ok(())
    });
    env
}

/// Every `^FD` whose data has a placeholder must follow `^FH_` (the escaped form decodes only
/// there). Answers the line of the first that does not.
fn unescaped_field(source: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = source[from..].find("^FD") {
        let start = from + at;
        let end = source[start..]
            .find("^FS")
            .map_or(source.len(), |e| start + e);
        if source[start..end].contains("{{") && !source[..start].ends_with("^FH_") {
            return Some(source[..start].matches('\n').count() + 1);
        }
        from = start + 3;
    }
    None
}

impl Templates {
    /// Loads `<template>.zpl` files from `dir` (other files are left alone) and renders each
    /// once with sample data.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let dir_error = |e: std::io::Error| TemplateError::Dir(format!("{}: {e}", dir.display()));
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_error)? {
            let path = entry.map_err(dir_error)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("zpl") {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let source = std::fs::read_to_string(&path).map_err(|e| TemplateError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            sources.push((stem.to_owned(), path.display().to_string(), source));
        }
        Templates::build(sources)
    }

    /// Templates from text: (template name, where it came from, source). For tests and tools.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Templates, TemplateError> {
        Templates::build(
            sources
                .iter()
                .map(|(name, source)| {
                    (
                        (*name).to_owned(),
                        format!("{name}.zpl"),
                        (*source).to_owned(),
                    )
                })
                .collect(),
        )
    }

    fn build(sources: Vec<(String, String, String)>) -> Result<Templates, TemplateError> {
        let mut env = environment();
        let mut files = BTreeMap::new();
        for (stem, shown, source) in sources {
            let file_error = |message: String| TemplateError::File {
                path: shown.clone(),
                message,
            };
            let Some(name) = NAMES.iter().copied().find(|n| *n == stem) else {
                return Err(file_error(format!(
                    "no template is called {stem:?} (one of {})",
                    NAMES.join(", ")
                )));
            };
            if let Some(line) = unescaped_field(&source) {
                return Err(file_error(format!(
                    "line {line}: a field with a placeholder needs ^FH_ before its ^FD \
                     (values are hex-escaped): ^FH_^FD{{{{ ... }}}}^FS"
                )));
            }
            env.add_template_owned(name, source)
                .map_err(|e| file_error(describe(&e)))?;
            files.insert(name, shown);
        }
        let templates = Templates {
            env: Some(Arc::new(env)),
            files,
        };
        for sample in Label::samples() {
            if let Some(file) = templates.files.get(sample.name()) {
                templates
                    .render(&sample, &LabelSize::default(), 2)
                    .map_err(|e| TemplateError::File {
                        path: file.clone(),
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(templates)
    }

    /// The templates the site replaced, with their files.
    pub fn files(&self) -> &BTreeMap<&'static str, String> {
        &self.files
    }

    /// The label's ZPL: from the site's template when there is one, else the built-in layout.
    /// The data is checked the same way for both.
    pub fn render(
        &self,
        label: &Label,
        size: &LabelSize,
        copies: u32,
    ) -> Result<String, LabelError> {
        let name = label.name();
        let (Some(env), true) = (&self.env, self.files.contains_key(name)) else {
            return label.render(size, copies);
        };
        let failed = |message: String| LabelError::Template {
            template: name,
            message,
        };
        let context = label.context(size, copies)?;
        let out = env
            .get_template(name)
            .and_then(|t| t.render(minijinja::value::Serde(&context)))
            .map_err(|e| failed(describe(&e)))?;
        let out = out.trim();
        if !out.starts_with("^XA") || !out.ends_with("^XZ") {
            return Err(failed("must start with ^XA and end with ^XZ".into()));
        }
        if copies > 1 && !out.contains("^PQ") {
            let body = &out[..out.len() - 3];
            return Ok(format!("{body}^PQ{}^XZ", copies.min(999)));
        }
        Ok(out.to_owned())
    }
}

/// A minijinja error with its line and the chain of causes.
fn describe(e: &minijinja::Error) -> String {
    let mut text = match e.line() {
        Some(line) => format!("line {line}: {}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::label::Address;
    use proptest::prelude::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const PRODUCT: &str = "^XA^CI28^PW{{ width_dots }}\n\
        ^FO30,30^A0N,40,40^FH_^FD{{ name }}^FS\n\
        {% if code %}^FO30,80^A0N,30,30^FH_^FD[{{ code }}]^FS{% endif %}\n\
        {% if ean13 %}^FO30,120^BY3^BEN,120,Y,N^FH_^FD{{ ean13 }}^FS\n\
        {% elif code128 %}^FO30,120^BY2^BCN,120,Y,N,N^FH_^FD{{ code128 }}^FS{% endif %}\n\
        ^XZ\n";

    #[test]
    fn a_site_template_replaces_its_built_in_only() {
        let dir = dir_with(&[("product.zpl", PRODUCT), ("notes.txt", "ignored")]);
        let t = Templates::load(dir.path()).unwrap();
        assert_eq!(
            t.files().keys().copied().collect::<Vec<_>>(),
            vec!["product"]
        );
        let label = Label::Product {
            name: "Drill ^XZ~JR".into(),
            code: Some("D_1".into()),
            barcode: Some("5901234123457".into()),
        };
        let out = t.render(&label, &LabelSize::default(), 3).unwrap();
        assert_eq!(
            out,
            "^XA^CI28^PW800\n^FO30,30^A0N,40,40^FH_^FDDrill _5EXZ_7EJR^FS\n\
             ^FO30,80^A0N,30,30^FH_^FD[D_5F1]^FS\n\
             ^FO30,120^BY3^BEN,120,Y,N^FH_^FD590123412345^FS\n\n^PQ3^XZ"
        );
        // Other labels keep the built-in layout.
        let location = Label::Location {
            name: "A".into(),
            barcode: "A".into(),
        };
        assert_eq!(
            t.render(&location, &LabelSize::default(), 1).unwrap(),
            location.render(&LabelSize::default(), 1).unwrap()
        );
        // Data is checked as for the built-ins.
        let empty = Label::Product {
            name: " ".into(),
            code: None,
            barcode: None,
        };
        assert!(matches!(
            t.render(&empty, &LabelSize::default(), 1),
            Err(LabelError::Empty { .. })
        ));
    }

    #[test]
    fn mistakes_stop_the_load_with_file_and_line() {
        let err = |files: &[(&str, &str)]| {
            Templates::load(dir_with(files).path())
                .unwrap_err()
                .to_string()
        };
        let e = err(&[("product.zpl", "^XA\n^FO1,1^FH_^FD{{ nmae }}^FS^XZ")]);
        assert!(
            e.contains("product.zpl") && e.contains("line 2") && e.contains("undefined"),
            "{e}"
        );
        let e = err(&[("lot.zpl", "^XA^FD{{ lot }}^FS^XZ")]);
        assert!(e.contains("lot.zpl") && e.contains("^FH_"), "{e}");
        let e = err(&[("sscc.zpl", "^XA{% if %}^XZ")]);
        assert!(e.contains("sscc.zpl") && e.contains("line 1"), "{e}");
        let e = err(&[("pallet.zpl", "^XA^XZ")]);
        assert!(e.contains("no template is called \"pallet\""), "{e}");
        let e = err(&[(
            "test.zpl",
            "^XA{% for i in range(10000) %}{% for j in range(10000) %}.{% endfor %}{% endfor %}^XZ",
        )]);
        assert!(e.contains("test.zpl") && e.contains("fuel"), "{e}");
        let e = err(&[("test.zpl", "^FO1,1^FH_^FD{{ printer }}^FS")]);
        assert!(e.contains("^XA"), "{e}");
        assert!(Templates::load(Path::new("/nonexistent/labels")).is_err());
    }

    #[test]
    fn every_template_sees_its_barcode_data() {
        let sources = [
            (
                "lot.zpl",
                "^XA^FH_^FD{{ gs1_128 }}|{{ gs1_datamatrix }}|{{ gs1_text }}|{{ expiry }}^FS^XZ",
            ),
            (
                "delivery.zpl",
                "^XA^FH_^FD{{ ship_to.name }}|{{ ship_to.city }}|{{ gs1_128 }}|{{ picking }}^FS^XZ",
            ),
            (
                "location.zpl",
                "^XA^FH_^FD{{ code128 }}|{{ width_dots }}x{{ height_dots }}@{{ dpmm }}^FS^XZ",
            ),
        ];
        let t = Templates::load(dir_with(&sources).path()).unwrap();
        let lot = Label::Lot {
            product: "P".into(),
            code: None,
            gtin: Some("05901234123457".into()),
            lot: "L_1".into(),
            serial: false,
            expiry: Some("2027-03-31".into()),
        };
        assert_eq!(
            t.render(&lot, &LabelSize::default(), 1).unwrap(),
            "^XA^FH_^FD>;>801059012341234571727033110>6L_5F1\
             |_5F101059012341234571727033110L_5Fd0951\
             |(01)05901234123457(17)270331(10)L_5F1|2027-03-31^FS^XZ"
        );
        let delivery = Label::Delivery {
            ship_to: Address {
                name: "Acme ^XA".into(),
                city: Some("Rīga".into()),
                ..Default::default()
            },
            picking: "WH/OUT/1".into(),
            origin: None,
            sscc: None,
            carrier: None,
        };
        assert_eq!(
            t.render(&delivery, &LabelSize::default(), 1).unwrap(),
            "^XA^FH_^FDAcme _5EXA|Rīga||WH/OUT/1^FS^XZ"
        );
        let loc = Label::Location {
            name: "A".into(),
            barcode: "A>B".into(),
        };
        assert_eq!(
            t.render(&loc, &LabelSize::default(), 1).unwrap(),
            "^XA^FH_^FDA><B|800x400@8^FS^XZ"
        );
    }

    proptest! {
        /// Whatever the data, the only `^` and `~` in the output are the template's own.
        #[test]
        fn no_value_reaches_the_printer_raw(value in any::<String>()) {
            let t = Templates::load(dir_with(&[("product.zpl", PRODUCT)]).path()).unwrap();
            let label = Label::Product {
                name: format!("x{value}"),
                code: Some(value.clone()),
                barcode: Some(value.clone()),
            };
            let out = t.render(&label, &LabelSize::default(), 1).unwrap();
            for field in out.split("^FD").skip(1) {
                let data = field.split("^FS").next().unwrap_or("");
                prop_assert!(!data.contains('^') && !data.contains('~'), "{:?}", data);
                prop_assert!(!data.chars().any(char::is_control), "{:?}", data);
            }
            prop_assert_eq!(out.matches("^XZ").count(), 1);
        }
    }
}

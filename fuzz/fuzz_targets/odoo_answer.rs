//! Any answer an Odoo (or whatever stands in its place) can send: the first byte picks an
//! HTTP status, the rest is the body, read as JSON-RPC and JSON-2; every object found is
//! also mapped as a record of every mirrored model, and any answer is taken as the server's
//! `ir.model` list and as every model's `fields_get` for the model map. Nothing may panic.
#![no_main]

use holdfast_sync::odoo::mapping::map_record;
use holdfast_sync::odoo::models::{ModelMap, candidate_models};
use holdfast_sync::odoo::{parse_json2_answer, parse_jsonrpc_answer};
use holdfast_sync::records::Model;
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 8] = [200, 400, 401, 403, 404, 422, 429, 500];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(*first) % STATUSES.len()];
    for answer in [
        parse_jsonrpc_answer(status, body),
        parse_json2_answer(status, body),
    ] {
        if let Ok(value) = &answer {
            let described = candidate_models()
                .into_iter()
                .map(|m| (m.to_owned(), value.clone()))
                .collect();
            let _ = ModelMap::from_answers(u32::from(*first), value, &described);
        }
        if let Ok(serde_json::Value::Array(rows)) = answer {
            for row in rows.iter().filter_map(|r| r.as_object()) {
                for model in Model::ALL {
                    let _ = map_record(*model, row);
                }
            }
        }
    }
});

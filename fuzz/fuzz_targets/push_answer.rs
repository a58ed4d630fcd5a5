//! Whatever Odoo answers to the push's calls: the input is split into answers (one per call,
//! `\n`-separated JSON, or an error when a line is not JSON), served in turn to the push
//! translation of a picking batch, a count and a new picking. Nothing may panic, and a
//! nonsense answer may end as anything but a claim that an entry was applied twice.
#![no_main]

use std::sync::Mutex;

use holdfast_sync::odoo::{Call, OdooError};
use holdfast_sync::ops::{BackorderChoice, CountOp, Operation, PickOp, ValidateOp};
use holdfast_sync::push::{self, NewPicking, NewPickingLine, Odoo, PushEntry, Side};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Scripted(Mutex<Vec<Result<Value, OdooError>>>);

impl Odoo for Scripted {
    fn call(
        &self,
        _call: Call,
    ) -> impl std::future::Future<Output = Result<Value, OdooError>> + Send {
        let next = self.0.lock().map(|mut v| v.pop()).ok().flatten();
        std::future::ready(next.unwrap_or_else(|| Err(OdooError::Lost("script ended".into()))))
    }

    fn major(&self) -> u32 {
        18
    }

    fn probe(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
        std::future::ready(Ok(()))
    }
}

fn script(data: &[u8]) -> Scripted {
    let mut answers: Vec<Result<Value, OdooError>> = data
        .split(|b| *b == b'\n')
        .map(|line| {
            serde_json::from_slice(line).map_err(|_| OdooError::Server {
                name: "odoo.exceptions.UserError".into(),
                message: String::from_utf8_lossy(line).into_owned(),
                status: None,
            })
        })
        .collect();
    answers.reverse();
    Scripted(Mutex::new(answers))
}

fn entry(op: Operation, ambiguous: bool) -> PushEntry {
    PushEntry {
        seq: 1,
        id: "0190f000-0000-7000-8000-000000000001".into(),
        op,
        ambiguous,
        sent_since: ambiguous.then_some(0),
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(_) => return,
    };
    let ambiguous = data.first().is_some_and(|b| b & 1 == 1);
    rt.block_on(async {
        let pick = Operation::Pick(PickOp {
            picking_id: 3,
            move_id: 5,
            product_id: 7,
            location_id: 19,
            lot_name: Some("L1".into()),
            package_id: None,
            quantity: 2.0,
            view_quantity: 5.0,
        });
        let validate = Operation::Validate(ValidateOp {
            picking_id: 3,
            backorder: BackorderChoice::Backorder,
        });
        let batch = [entry(pick, ambiguous), entry(validate, ambiguous)];
        let _ = push::push_picking(&script(data), 3, &[], &batch).await;
        let count = CountOp {
            product_id: 7,
            location_id: 19,
            lot_name: Some("L1".into()),
            counted: 3.0,
            expected: 5.0,
        };
        let _ = push::push_count(
            &script(data),
            &entry(Operation::Count(count.clone()), ambiguous),
            &count,
        )
        .await;
        let spec = NewPicking {
            picking_type_id: 5,
            location_id: 19,
            location_dest_id: 20,
            side: Side::Source,
            lines: vec![NewPickingLine {
                product_id: 7,
                lot_name: None,
                location_id: 19,
                quantity: 1.0,
            }],
            partner_id: Some(3),
            origin: Some("SO001 WH/OUT/00001".into()),
            note: Some("re-created <after> a cancellation".into()),
        };
        let _ = push::push_new_picking(
            &script(data),
            &entry(Operation::Count(count), ambiguous),
            &spec,
        )
        .await;
    });
});

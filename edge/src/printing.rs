//! Label printing: labels rendered to ZPL and spooled in the store, one worker per printer.
//!
//! A worker polls its printer's status with `~HS` every `poll` (a printer that is out of
//! media, paused or open may not answer at all: a time-out counts as a missed poll, never as
//! "ready"; `offline_after` missed polls in a row mark it offline). While the last answer said
//! ready, it sends the queued jobs in order, one connection each:
//!
//! - could not connect (nothing reached the printer): the job goes back to the queue with a
//!   jittered exponential delay and holds the jobs behind it (labels come out in order);
//! - the connection broke after bytes went out: the job is `unknown` and is never sent again
//!   by itself — the label may have printed; a person reprints or cancels it;
//! - every byte taken: `sent`.
//!
//! Jobs spooled by another process (`holdfast print test`) are found by the worker's next look
//! at the queue (every second); jobs spooled here wake the worker at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use backon::BackoffBuilder;
use holdfast_devices::label::{Address, Label};
use holdfast_devices::printer::{self, SendError};
use holdfast_devices::template::{TemplateError, Templates};
use holdfast_sync::ops::Operation;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{LanConfig, PrinterConfig};
use crate::registry::Registry;
use crate::store::{
    DeviceCmd, NewEntry, NewPrintJob, PrintSettle, Reader, Store, StoreError, now_ms,
};

/// How often an idle worker looks at the queue for jobs spooled by another process.
const QUEUE_LOOK: Duration = Duration::from_secs(1);
/// Retry delays of a job that could not be sent.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Jittered exponential delays from [`RETRY_MIN`] to [`RETRY_MAX`], without end.
fn retry_delays() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN)
        .with_max_delay(RETRY_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Why a label was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("no printer {0:?} is configured")]
    UnknownPrinter(String),
    #[error("no printer is configured for this device (set printing.default_printer)")]
    NoPrinter,
    #[error("label: {0}")]
    Label(String),
    #[error("lot {0:?} has characters a lot label's barcode cannot carry")]
    Lot(String),
    #[error("package labels need printing.gs1_company_prefix (SSCCs are issued from it)")]
    NoSsccPrefix,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Printing::reload_templates`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatesReloaded {
    /// `printing.templates` is not set: the built-in layouts stay.
    NoneConfigured,
    /// These files now replace their built-in layouts (the others are built in again).
    Loaded(Vec<String>),
}

/// The printing service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Printing {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    lan: LanConfig,
    wake: HashMap<String, Arc<Notify>>,
    /// The label layouts in use: the config's at start, replaced by [`Printing::reload_templates`].
    templates: RwLock<Arc<Templates>>,
}

impl Printing {
    pub fn new(store: Store, lan: LanConfig) -> Printing {
        let wake = lan
            .printers
            .iter()
            .map(|p| (p.id.clone(), Arc::new(Notify::new())))
            .collect();
        let templates = RwLock::new(Arc::new(lan.printing.templates.clone()));
        Printing {
            inner: Arc::new(Inner {
                store,
                lan,
                wake,
                templates,
            }),
        }
    }

    fn templates(&self) -> Arc<Templates> {
        self.inner
            .templates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the site's templates (`printing.templates`) again, checked as at start. A
    /// template with a mistake leaves the ones in use in place and says which file and line;
    /// labels already spooled keep the layout they were rendered with.
    pub fn reload_templates(&self) -> Result<TemplatesReloaded, TemplateError> {
        let Some(dir) = &self.inner.lan.printing.templates_dir else {
            return Ok(TemplatesReloaded::NoneConfigured);
        };
        let templates = Templates::load(dir)?;
        let files = templates.files().values().cloned().collect();
        *self
            .inner
            .templates
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(templates);
        Ok(TemplatesReloaded::Loaded(files))
    }

    pub fn lan(&self) -> &LanConfig {
        &self.inner.lan
    }

    /// The printer for a device's labels: the one named (checked), the device's own (scanner
    /// config), or the site default.
    pub fn printer_for(
        &self,
        named: Option<&str>,
        device: Option<&str>,
    ) -> Result<&PrinterConfig, PrintError> {
        let lan = &self.inner.lan;
        if let Some(name) = named {
            return lan
                .printer(name)
                .ok_or_else(|| PrintError::UnknownPrinter(name.to_owned()));
        }
        let own = device.and_then(|d| {
            lan.scanners
                .iter()
                .find(|s| s.id == d)
                .and_then(|s| s.printer.clone())
                .or_else(|| {
                    lan.mqtt
                        .as_ref()
                        .filter(|(m, _)| m.devices.is_empty() || m.devices.iter().any(|x| x == d))
                        .and_then(|(_, p)| p.clone())
                })
        });
        own.or_else(|| lan.printing.default_printer.clone())
            .and_then(|id| lan.printer(&id))
            .ok_or(PrintError::NoPrinter)
    }

    /// Renders a label for a printer (its size and resolution).
    pub fn render(
        &self,
        printer: &PrinterConfig,
        label: &Label,
        requested_by: &str,
        source: Option<String>,
    ) -> Result<NewPrintJob, PrintError> {
        let zpl = self
            .templates()
            .render(label, &printer.size, 1)
            .map_err(|e| PrintError::Label(e.to_string()))?;
        Ok(NewPrintJob {
            printer: printer.id.clone(),
            template: label.name().to_owned(),
            label: serde_json::to_string(label).map_err(|e| PrintError::Label(e.to_string()))?,
            zpl,
            requested_by: requested_by.to_owned(),
            source,
            request_key: None,
        })
    }

    /// Spools a label; answers the job id once it is on disk.
    pub async fn enqueue(
        &self,
        printer: &PrinterConfig,
        label: &Label,
        requested_by: &str,
        source: Option<String>,
    ) -> Result<i64, PrintError> {
        self.enqueue_keyed(printer, label, requested_by, source, None)
            .await
    }

    /// [`Printing::enqueue`] under a device's idempotency key: a retry with the same key
    /// answers the first job instead of spooling another.
    pub async fn enqueue_keyed(
        &self,
        printer: &PrinterConfig,
        label: &Label,
        requested_by: &str,
        source: Option<String>,
        key: Option<String>,
    ) -> Result<i64, PrintError> {
        let mut job = self.render(printer, label, requested_by, source)?;
        job.request_key = key;
        let id = self.inner.store.devices(DeviceCmd::Enqueue(job)).await?;
        self.wake(&printer.id);
        Ok(id)
    }

    /// Wakes a printer's worker (a job was spooled for it).
    pub fn wake(&self, printer: &str) {
        if let Some(n) = self.inner.wake.get(printer) {
            n.notify_one();
        }
    }

    /// A new SSCC from the site's GS1 company prefix (never issued twice).
    pub async fn next_sscc(&self) -> Result<String, PrintError> {
        let (prefix, extension) = self
            .inner
            .lan
            .printing
            .sscc
            .clone()
            .ok_or(PrintError::NoSsccPrefix)?;
        let serial = self
            .inner
            .store
            .devices(DeviceCmd::NextSscc {
                prefix: prefix.clone(),
            })
            .await?;
        holdfast_devices::label::sscc(extension, &prefix, serial.max(0) as u64)
            .map_err(|e| PrintError::Label(e.to_string()))
    }

    /// The package label of a picking: a delivery label (ship-to, picking, SSCC) when the
    /// picking goes to a partner, else an SSCC label.
    pub async fn package_label(&self, picking_id: i64) -> Result<Label, PrintError> {
        let shipping = self
            .inner
            .store
            .read(|r| r.shipping(picking_id))?
            .ok_or_else(|| StoreError::NotFound(format!("picking {picking_id}")))?;
        let sscc = self.next_sscc().await?;
        Ok(match shipping.partner {
            Some([name, street, street2, zip, city, country]) if shipping.kind == "outgoing" => {
                Label::Delivery {
                    ship_to: Address {
                        name: name.unwrap_or_default(),
                        street,
                        street2,
                        zip,
                        city,
                        country,
                    },
                    picking: shipping.picking,
                    origin: shipping.origin,
                    sscc: Some(sscc),
                    carrier: None,
                }
            }
            _ => Label::Sscc {
                sscc,
                picking: Some(shipping.picking),
                content: shipping.origin,
            },
        })
    }

    /// The product label of a product in the mirror.
    pub fn product_label(&self, r: &Reader<'_>, product_id: i64) -> Result<Label, PrintError> {
        let p = r
            .product(product_id)?
            .ok_or_else(|| StoreError::NotFound(format!("product {product_id}")))?;
        Ok(Label::Product {
            name: p.name,
            code: p.default_code,
            barcode: p.barcode,
        })
    }

    /// The location label of a location in the mirror.
    pub fn location_label(&self, r: &Reader<'_>, location_id: i64) -> Result<Label, PrintError> {
        let l = r
            .location(location_id)?
            .ok_or_else(|| StoreError::NotFound(format!("location {location_id}")))?;
        let barcode = l.barcode.clone().unwrap_or_else(|| l.name.clone());
        Ok(Label::Location {
            name: l.name,
            barcode,
        })
    }

    /// Whether a step's entries may need receipt labels (checked before any read: most steps
    /// are picks).
    pub fn labels_receipts(&self, entries: &[NewEntry]) -> bool {
        self.inner.lan.printing.receive_labels
            && entries.iter().any(|e| {
                matches!(&e.op, Operation::Receive(o) if o.lot_name.is_some() && o.quantity > 0.0)
            })
    }

    /// Lot/serial labels for what a floor step received (when `printing.receive_labels`):
    /// one per new receipt line with a lot or serial, rendered for the device's printer.
    pub fn receipt_labels(
        &self,
        r: &Reader<'_>,
        device: &str,
        entries: &[NewEntry],
    ) -> Result<Vec<NewPrintJob>, PrintError> {
        if !self.inner.lan.printing.receive_labels {
            return Ok(Vec::new());
        }
        let mut jobs = Vec::new();
        for entry in entries {
            let Operation::Receive(op) = &entry.op else {
                continue;
            };
            let Some(lot) = op.lot_name.clone().filter(|_| op.quantity > 0.0) else {
                continue;
            };
            if !holdfast_devices::label::lot_printable(&lot) {
                return Err(PrintError::Lot(lot));
            }
            // A put-away bin scanned after the line moves it (minus here, plus there): the
            // goods already have their label.
            let moved = entries.iter().any(|e| {
                matches!(&e.op, Operation::Receive(o)
                    if o.move_id == op.move_id && o.lot_name == op.lot_name && o.quantity < 0.0)
            });
            if moved {
                continue;
            }
            let printer = self.printer_for(None, Some(device))?;
            let Some(p) = r.product(op.product_id)? else {
                continue;
            };
            let gtin = p
                .barcode
                .clone()
                .filter(|b| {
                    matches!(b.len(), 8 | 12 | 13 | 14) && b.bytes().all(|c| c.is_ascii_digit())
                })
                .map(|b| format!("{b:0>14}"));
            let label = Label::Lot {
                product: p.name,
                code: p.default_code,
                gtin,
                lot,
                serial: p.tracking == "serial",
                expiry: op
                    .expiration_date
                    .as_deref()
                    .and_then(|d| d.get(..10))
                    .map(str::to_owned),
            };
            let by = match &entry.operator {
                Some(o) => format!("operator:{o}"),
                None => format!("device:{device}"),
            };
            let source = entry.id.map(|id| format!("journal:{id}"));
            // A serial label per unit would be one per scan anyway (serials are received one by
            // one); lots get one label per receipt line.
            jobs.push(self.render(printer, &label, &by, source)?);
        }
        Ok(jobs)
    }

    /// Runs one worker per configured printer until `cancel`.
    pub fn spawn_workers(
        &self,
        registry: &Registry,
        cancel: &CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.inner
            .lan
            .printers
            .iter()
            .map(|p| {
                let worker = Worker {
                    printer: p.clone(),
                    store: self.inner.store.clone(),
                    registry: registry.clone(),
                    wake: self.inner.wake.get(&p.id).cloned().unwrap_or_default(),
                };
                tokio::spawn(worker.run(cancel.clone()))
            })
            .collect()
    }
}

/// What a printer's status poll said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Ready,
    Fault,
    Offline,
}

/// The loop that serves one printer.
struct Worker {
    printer: PrinterConfig,
    store: Store,
    registry: Registry,
    wake: Arc<Notify>,
}

impl Worker {
    async fn run(self, cancel: CancellationToken) {
        let id = self.printer.id.clone();
        let mut missed = 0u32;
        let mut health = Health::Offline;
        let mut last_poll: Option<tokio::time::Instant> = None;
        loop {
            let due = last_poll.is_none_or(|t| t.elapsed() >= self.printer.poll);
            let has_job = self.has_due_job().unwrap_or(false);
            // Poll on schedule, and before sending after a quiet spell.
            if due || (has_job && health != Health::Ready) {
                // The period runs from the start of a poll: a time-out is part of it.
                last_poll = Some(tokio::time::Instant::now());
                health = self.poll(&mut missed).await;
            }
            if health == Health::Ready && has_job {
                self.drain(&cancel).await;
            }
            let next_poll = last_poll.map_or(Duration::ZERO, |t| {
                self.printer.poll.saturating_sub(t.elapsed())
            });
            let wait = QUEUE_LOOK.min(next_poll);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!(printer = %id, "printer worker stopped");
    }

    fn has_due_job(&self) -> Result<bool, StoreError> {
        let id = &self.printer.id;
        Ok(self
            .store
            .read(|r| r.next_print_job(id, now_ms()))?
            .is_some())
    }

    /// Asks `~HS` and records what it says.
    async fn poll(&self, missed: &mut u32) -> Health {
        let id = &self.printer.id;
        match printer::query_status(&self.printer.address, self.printer.timeout).await {
            Ok(status) => {
                *missed = 0;
                let detail = serde_json::to_string(&status).ok();
                if status.ready() {
                    self.registry.printer(id, "online", detail, None);
                    Health::Ready
                } else {
                    let faults = status.faults().join(", ");
                    tracing::warn!(printer = %id, %faults, "printer not ready");
                    self.registry.printer(
                        id,
                        "fault",
                        detail,
                        Some(format!("not ready: {faults}")),
                    );
                    Health::Fault
                }
            }
            Err(e) => {
                *missed += 1;
                let offline = *missed >= self.printer.offline_after;
                if offline && *missed == self.printer.offline_after {
                    tracing::warn!(printer = %id, error = %e, missed = *missed, "printer offline");
                }
                let state = if offline { "offline" } else { "fault" };
                self.registry
                    .printer(id, state, None, Some(format!("status poll: {e}")));
                if offline {
                    Health::Offline
                } else {
                    Health::Fault
                }
            }
        }
    }

    /// Sends due jobs in order until the queue is empty, a send fails, or the poll period is
    /// over (the status is asked again between batches).
    async fn drain(&self, cancel: &CancellationToken) {
        let id = self.printer.id.clone();
        let started = tokio::time::Instant::now();
        while !cancel.is_cancelled() && started.elapsed() < self.printer.poll {
            let job = match self.store.read(|r| r.next_print_job(&id, now_ms())) {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(printer = %id, error = %e, "print queue unreadable");
                    return;
                }
            };
            match self.store.devices(DeviceCmd::Begin { id: job.id }).await {
                Ok(1) => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(printer = %id, job = job.id, error = %e, "print job not started");
                    return;
                }
            }
            let settle = match printer::send(
                &self.printer.address,
                job.zpl.as_bytes(),
                self.printer.timeout,
            )
            .await
            {
                Ok(()) => PrintSettle::Sent,
                Err(SendError::NotSent(error)) => {
                    let delay = retry_delays()
                        .nth(job.attempts.clamp(0, 30) as usize)
                        .unwrap_or(RETRY_MAX);
                    PrintSettle::Retry {
                        error,
                        next_attempt_at: now_ms() + delay.as_millis() as i64,
                    }
                }
                Err(SendError::Ambiguous { written, error }) => PrintSettle::Unknown {
                    error: format!(
                        "connection broke after {written} of {} bytes: {error}; the label may have printed (reprint or cancel it)",
                        job.zpl.len()
                    ),
                },
            };
            let failed = !matches!(settle, PrintSettle::Sent);
            match &settle {
                PrintSettle::Sent => tracing::debug!(printer = %id, job = job.id, "label sent"),
                PrintSettle::Retry { error, .. } => {
                    tracing::warn!(printer = %id, job = job.id, %error, "label not sent; will retry")
                }
                PrintSettle::Unknown { error } => {
                    tracing::error!(printer = %id, job = job.id, %error, "label send interrupted")
                }
            }
            // The outcome must be recorded before the next job: the job stays `sending` (and
            // holds the queue) until it is. On a stop it is left so, and the next start
            // marks it `unknown`, never sent again by itself.
            let mut waits = retry_delays();
            while let Err(e) = self
                .store
                .devices(DeviceCmd::Settle {
                    id: job.id,
                    settle: settle.clone(),
                })
                .await
            {
                tracing::error!(printer = %id, job = job.id, error = %e, "print job outcome not recorded; retrying");
                let wait = waits.next().unwrap_or(RETRY_MAX);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if failed {
                return;
            }
        }
    }
}

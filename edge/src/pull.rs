//! The pull: refreshing the mirror from Odoo through the store's writer.
//!
//! A full pull takes an epoch, then reads every mirrored model of the site's scope page by
//! page (keyset by id), writing each page in its own transaction, so memory stays bounded and
//! a pull that fails half-way leaves a consistent mirror. Ids the mirror holds that Odoo no
//! longer returns are deleted (through the same hold-back rules), and the model's snapshot is
//! declared complete so acknowledged effects fold.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::Context;
use holdfast_sync::odoo::OdooClient;
use holdfast_sync::pull::{Scope, read_page};
use holdfast_sync::records::Model;

use crate::config::{OdooApi, OdooConfig};
use crate::store::{MirrorBatch, Store};

/// Records per page.
pub const PAGE: usize = 2_000;

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullReport {
    pub records: u64,
    pub deleted: u64,
    pub held_back: u64,
    pub pages: u64,
}

/// Pulls everything in scope.
pub async fn full_pull(
    store: &Store,
    client: &OdooClient,
    scope: &Scope,
) -> anyhow::Result<PullReport> {
    let started = Instant::now();
    let epoch = store.begin_pull().await?;
    let mut report = PullReport::default();
    for &model in Model::ALL {
        let mut seen: HashSet<i64> = HashSet::new();
        let mut after = 0;
        loop {
            let page = read_page(client, scope, model, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id();
            seen.extend(page.iter().map(|r| r.id()));
            let n = page.len();
            let outcome = store
                .apply_mirror(MirrorBatch {
                    epoch: Some(epoch),
                    upserts: page,
                    deletes: vec![],
                })
                .await
                .with_context(|| format!("writing a page of {}", model.odoo_name()))?;
            report.records += outcome.upserted;
            report.held_back += outcome.held_back;
            report.pages += 1;
            if n < PAGE {
                break;
            }
        }
        // Deletions are invisible to write_date: compare id sets.
        let gone: Vec<(Model, i64)> = store
            .read(|r| r.mirror_ids(model))?
            .into_iter()
            .filter(|id| !seen.contains(id))
            .map(|id| (model, id))
            .collect();
        if !gone.is_empty() {
            let outcome = store
                .apply_mirror(MirrorBatch {
                    epoch: Some(epoch),
                    upserts: vec![],
                    deletes: gone,
                })
                .await?;
            report.deleted += outcome.deleted;
            report.held_back += outcome.held_back;
        }
        store.complete_snapshot(epoch, model).await?;
        tracing::info!(model = model.odoo_name(), n_records = seen.len(), "pulled");
    }
    tracing::info!(
        n_records = report.records,
        n_deleted = report.deleted,
        n_held_back = report.held_back,
        secs = started.elapsed().as_secs_f64(),
        "full pull done"
    );
    Ok(report)
}

/// The wire client's settings for the configured Odoo.
pub fn client_config(odoo: &OdooConfig) -> holdfast_sync::odoo::ClientConfig {
    let mut c = holdfast_sync::odoo::ClientConfig::new(
        &odoo.url,
        &odoo.database,
        &odoo.login,
        odoo.api_key.expose(),
        odoo.company_id,
    );
    c.api = match odoo.api {
        OdooApi::Auto => holdfast_sync::odoo::ApiChoice::Auto,
        OdooApi::JsonRpc => holdfast_sync::odoo::ApiChoice::JsonRpc,
        OdooApi::Json2 => holdfast_sync::odoo::ApiChoice::Json2,
    };
    c.timeout = odoo.timeout;
    c
}

/// Connects to the configured Odoo and pulls everything in scope.
pub async fn pull_configured(store: &Store, odoo: &OdooConfig) -> anyhow::Result<PullReport> {
    let client = OdooClient::connect(client_config(odoo))
        .await
        .with_context(|| format!("connecting to Odoo at {}", odoo.url))?;
    let scope = Scope {
        company_id: odoo.company_id,
        warehouse_id: odoo.warehouse_id,
    };
    full_pull(store, &client, &scope).await
}

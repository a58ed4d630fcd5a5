//! The Odoo side of Holdfast.
//!
//! This crate works on plain records and operations; it knows nothing of SQLite, HTTP
//! servers or devices. Today it holds:
//!
//! - [`records`]: the Odoo records a site mirrors, as plain structs with typed ids;
//! - [`ops`]: the warehouse operations the floor records in the journal, their persisted
//!   payloads, causal keys and their effect on the floor's view;
//! - [`dataset`]: deterministic warehouse data sets for the demo and for benchmarks;
//! - [`odoo`]: the Odoo wire client (JSON-RPC and JSON-2), its classified errors, and the
//!   mapping of Odoo's records;
//! - [`pull`]: the site's scope in Odoo and keyset-paged reads of it;
//! - [`sim`]: an Odoo simulator speaking the real wire formats.
//!
//! The wire clients, the pull planner, the push translation and the Odoo simulator join
//! them here (see ARCHITECTURE.md).

pub mod dataset;
pub mod odoo;
pub mod ops;
pub mod pull;
pub mod push;
pub mod records;
pub mod sim;

//! Device I/O for Holdfast: what comes in from scanners and goes out to printers.
//!
//! This crate is pure with respect to storage and the cloud: it turns bytes from a device
//! into typed input and typed output into bytes. It depends on neither `holdfast-sync` nor
//! the appliance.
//!
//! - Scans: [`scan::RawScan`] (clean-up and rejection of hostile input) and [`gs1::decode`]
//!   (AIM symbology identifiers and GS1 element strings).
//! - Scanner transports ([`serial`], [`tcp`], [`mqtt`]) frame bytes into scans
//!   ([`frame`]), hand them to a [`hub::Hub`] and give its [`hub::Feedback`] back to the
//!   device.
//! - Labels: [`zpl`] (an emitter whose fields cannot inject commands), [`label`] (the
//!   built-in templates), [`template`] (site templates that replace them), [`printer`] (status and sending over TCP 9100 or serial, and a fake
//!   Zebra printer for the demo and tests).

pub mod frame;
pub mod gs1;
pub mod hub;
pub mod label;
pub mod mqtt;
pub mod printer;
pub mod scan;
pub mod serial;
pub mod tcp;
pub mod template;
pub mod zpl;

//! Device I/O for Holdfast: what comes in from scanners and goes out to printers.
//!
//! This crate is pure with respect to storage and the cloud: it turns bytes from a device
//! into typed input and typed output into bytes. It depends on neither `holdfast-sync` nor
//! the appliance. Today it holds the first stages every scanner transport shares:
//! [`scan::RawScan`] (framing-independent clean-up and rejection of hostile input) and
//! [`gs1::decode`] (AIM symbology identifiers and GS1 element strings).

pub mod gs1;
pub mod scan;

//! End-to-end tests: run the real `patronage` binary on real files and read its Parquet output
//! back with arrow-rs, a reader independent of the polars writer. One integration binary (every
//! extra test binary links polars again).
#![allow(clippy::unwrap_used)]

mod cdnow;
mod clicks;
mod clusters;
mod common;
mod customers;
mod delta;
mod determinism;
mod docs;
mod exports;
mod fuzz;
mod loyalty;
mod malformed;
mod outputs;
mod publish;
mod report;
mod rules;
mod scale_out;
mod seasonality;

//! Wires transports, calls, the work order store and metrics together.
pub async fn run() {}

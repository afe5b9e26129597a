//! Hostile judge for the runtime's tests: executes `unreachable`.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    core::arch::wasm32::unreachable()
}

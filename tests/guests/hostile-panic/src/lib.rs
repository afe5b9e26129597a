//! Hostile judge for the runtime's tests: panics.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    panic!("hostile judge panicked on purpose")
}

//! Hostile judge for the runtime's tests: built against `ponder:plugin@0.2.0` (its own WIT copy), newer than the host.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!(wit: "wit");

fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    Ok(lengths(request))
}

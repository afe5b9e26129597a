//! Hostile judge for the runtime's tests: built against `ponder:plugin@0.3.0` (its own WIT copy
//! of 0.1.0 with the version raised), newer than every version the host serves.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!(wit: "wit");

fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    Ok(lengths(request))
}

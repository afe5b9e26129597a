//! Hostile judge for the runtime's tests: returns NaN (or, for a second response `inf`, infinity) as a score.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let bad = if request
        .responses
        .get(1)
        .is_some_and(|second| second == "inf")
    {
        f64::INFINITY
    } else {
        f64::NAN
    };
    Ok(request.responses.iter().map(|_| Some(bad)).collect())
}

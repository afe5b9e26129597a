//! Hostile judge for the runtime's tests: returns one score fewer than there are responses.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let mut scores = lengths(request);
    scores.pop();
    Ok(scores)
}

//! Hostile judge for the runtime's tests: reads a host file.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let text = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    Ok(vec![Some(text.len() as f64)])
}

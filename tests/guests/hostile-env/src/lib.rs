//! Hostile judge for the runtime's tests: reads the environment.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let count = std::env::vars().count() + std::env::args().count();
    let home = std::env::var("HOME").expect("reading $HOME");
    Ok(vec![Some((count + home.len()) as f64)])
}

//! Hostile judge for the runtime's tests: loops forever.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

//! Probe judge for the runtime's tests: reads the wall clock and measures a busy loop with the
//! monotonic clock (both must be fixed in the sandbox).
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(-1.0);
    let started = std::time::Instant::now();
    let mut spin: u64 = 0;
    for step in 0..1_000_000u64 {
        spin = std::hint::black_box(spin.wrapping_add(step));
    }
    let elapsed = started.elapsed().as_nanos() as f64;
    Ok(vec![Some(wall), Some(elapsed)])
}

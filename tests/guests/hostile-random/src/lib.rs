//! Probe judge for the runtime's tests: reads `wasi:random` (which must be a stream seeded by
//! the host).
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    // The top 52 bits, so the value is exact as an f64.
    let secure = wasip2::random::random::get_random_u64() >> 12;
    let insecure = wasip2::random::insecure::get_insecure_random_u64() >> 12;
    Ok(vec![Some(secure as f64), Some(insecure as f64)])
}

//! Hostile judge for the runtime's tests: opens a TCP connection.
//! Otherwise a well-behaved judge: see `guest_support::hostile_judge!`.

guest_support::hostile_judge!();

fn attack(_request: &JudgeRequest) -> Result<Vec<Option<f64>>, PluginError> {
    let stream = std::net::TcpStream::connect("127.0.0.1:80").expect("connecting to 127.0.0.1:80");
    std::hint::black_box(&stream);
    Ok(vec![Some(1.0)])
}

//! Free loopback ports.

/// A free loopback port (see [`free_port_run`]).
pub fn free_port() -> u16 {
    free_port_run(1)
}

/// The first of `count` consecutive free loopback ports, below the kernel's ephemeral range
/// (outgoing connections draw from that range, and could take a port before we bind it).
pub fn free_port_run(count: u16) -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .filter(|low| *low > 12_000)
        .unwrap_or(32_768);
    for _ in 0..500 {
        let port = 10_000 + (random_u64() % u64::from(low - 10_000 - count - 1)) as u16;
        let all_free =
            (port..port + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return port;
        }
    }
    panic!("no free port found");
}

pub fn random_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

//! Callers' audio for SIPp to replay: RTP packets written as a pcap capture, silence,
//! and sip-tester's speech sample, so a test controls what a caller says and when.

/// One RTP packet of a caller's capture.
pub struct RtpPacket {
    /// When it is sent, in microseconds from the start of the capture.
    pub at_micros: u64,
    pub payload_type: u8,
    pub marker: bool,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// Packets as a capture SIPp can replay (Ethernet, IPv4, UDP, RTP with one SSRC and
/// consecutive sequence numbers).
pub fn capture(packets: &[RtpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    // pcap global header: magic, version 2.4, UTC, accuracy, snap length, Ethernet.
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    for word in [0u32, 0, 65_535, 1] {
        out.extend(word.to_le_bytes());
    }
    for (n, packet) in packets.iter().enumerate() {
        let udp_len = 8 + 12 + packet.payload.len();
        let ip_len = 20 + udp_len;
        let frame_len = 14 + ip_len;
        for word in [
            (packet.at_micros / 1_000_000) as u32,
            (packet.at_micros % 1_000_000) as u32,
            frame_len as u32,
            frame_len as u32,
        ] {
            out.extend(word.to_le_bytes());
        }
        out.extend([0u8; 12]);
        out.extend(0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend((ip_len as u16).to_be_bytes());
        ip.extend((n as u16).to_be_bytes());
        ip.extend([0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let folded = (sum & 0xffff) + (sum >> 16);
        let checksum = !((folded & 0xffff) + (folded >> 16)) as u16;
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        out.extend(ip);
        out.extend(6000u16.to_be_bytes());
        out.extend(6000u16.to_be_bytes());
        out.extend((udp_len as u16).to_be_bytes());
        out.extend(0u16.to_be_bytes());
        out.extend([0x80, u8::from(packet.marker) << 7 | packet.payload_type]);
        out.extend((n as u16).to_be_bytes());
        out.extend(packet.timestamp.to_be_bytes());
        out.extend(0x5113_7e00u32.to_be_bytes());
        out.extend(&packet.payload);
    }
    out
}

/// A caller's audio as a capture: one PCMA packet per frame, each frame's length in
/// samples setting the pace and the timestamps.
pub fn pcma_capture(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut samples_before = 0u32;
    let packets: Vec<RtpPacket> = frames
        .iter()
        .map(|frame| {
            let packet = RtpPacket {
                at_micros: u64::from(samples_before) * 125,
                payload_type: 8,
                marker: samples_before == 0,
                timestamp: samples_before,
                payload: frame.clone(),
            };
            samples_before += frame.len() as u32;
            packet
        })
        .collect();
    capture(&packets)
}

/// `seconds` of a silent line: 20 ms PCMA frames of A-law zero.
pub fn silence(seconds: f64) -> Vec<Vec<u8>> {
    vec![vec![0xd5u8; 160]; (seconds * 50.0) as usize]
}

/// sip-tester's G.711 A-law speech sample (about 7 s), as its RTP payloads.
pub fn speech() -> Vec<Vec<u8>> {
    let path = super::sipp_pcap_dir().join("g711a.pcap");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(data[..4], [0xd4, 0xc3, 0xb2, 0xa1], "a little-endian pcap");
    let mut payloads = Vec::new();
    let mut offset = 24;
    while offset + 16 <= data.len() {
        let captured = u32::from_le_bytes(data[offset + 8..offset + 12].try_into().unwrap());
        let frame = &data[offset + 16..offset + 16 + captured as usize];
        offset += 16 + captured as usize;
        let ip = &frame[14..];
        let rtp = &ip[usize::from(ip[0] & 0x0f) * 4 + 8..];
        assert_eq!(rtp[1] & 0x7f, 8, "PCMA");
        payloads.push(rtp[12 + 4 * usize::from(rtp[0] & 0x0f)..].to_vec());
    }
    payloads
}

//! SIP micro-benchmarks: parse and serialise the three messages a hotline sees most
//! (an INVITE with SDP, its 200 OK, a REGISTER), the request summary the transaction
//! layer builds from every request, and SDP offer/answer.
//!
//! Pure CPU work: no sockets, no clock. Run with `cargo bench --bench sip`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline::media::g711::Codec;
use hotline::sip::message::{self, SipMessage};
use hotline::sip::sdp;

const OFFER: &str = "v=0\r\n\
o=caller 53655765 2353687637 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:8890@198.51.100.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---2c8e1f6a;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Citizen\" <sip:13900001234@192.0.2.10:5060>;tag=a73kszlfl\r\n\
To: <sip:8890@198.51.100.1:5060>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:13900001234@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Supported: replaces, timer\r\n\
User-Agent: trunk-gw/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

fn ok_200() -> String {
    let answer = "v=0\r\no=hotline 42 42 IN IP4 198.51.100.1\r\ns=hotline\r\n\
c=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
a=ptime:20\r\na=sendrecv\r\n";
    format!(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---2c8e1f6a;rport=5060;received=192.0.2.10\r\n\
From: \"Citizen\" <sip:13900001234@192.0.2.10:5060>;tag=a73kszlfl\r\n\
To: <sip:8890@198.51.100.1:5060>;tag=hl-9f8e7d6c\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:8890@198.51.100.1:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{answer}",
        answer.len()
    )
}

const REGISTER: &str = "REGISTER sip:hotline.example.gov.cn SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.21:5062;branch=z9hG4bK-d8754z-6a1b2c3d;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:agent1001@hotline.example.gov.cn>;tag=83bd1a2f\r\n\
To: <sip:agent1001@hotline.example.gov.cn>\r\n\
Call-ID: Zjk2MTQ1NjdhYmNkZWY@10.0.0.21\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:agent1001@10.0.0.21:5062;transport=udp>;expires=300\r\n\
Expires: 300\r\n\
Authorization: Digest username=\"agent1001\", realm=\"hotline\", nonce=\"6b3c2a1f\", uri=\"sip:hotline.example.gov.cn\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5\r\n\
User-Agent: softphone/2.3\r\n\
Content-Length: 0\r\n\r\n";

fn sip_benches(c: &mut Criterion) {
    let messages = [
        ("invite_sdp", invite()),
        ("ok_200_sdp", ok_200()),
        ("register", REGISTER.to_string()),
    ];
    let mut group = c.benchmark_group("sip");
    for (name, text) in &messages {
        group.throughput(Throughput::Bytes(text.len() as u64));
        let bytes = text.as_bytes();
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| message::parse(black_box(bytes)))
        });
        let parsed = message::parse(bytes).expect("bench message parses");
        group.bench_function(format!("serialize/{name}"), |b| {
            b.iter(|| black_box(&parsed).to_string())
        });
    }
    group.throughput(Throughput::Elements(1));
    for (name, text) in &messages[..] {
        if let Ok(SipMessage::Request(request)) = message::parse(text.as_bytes()) {
            group.bench_function(format!("summary/{name}"), |b| {
                b.iter(|| message::summary(black_box(&request)))
            });
        }
    }
    group.finish();
}

fn sdp_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("sdp");
    let supported = [Codec::Pcmu, Codec::Pcma];
    group.bench_function("negotiate", |b| {
        b.iter(|| sdp::negotiate(black_box(OFFER.as_bytes()), &supported))
    });
    let negotiated = sdp::negotiate(OFFER.as_bytes(), &supported).expect("bench offer is valid");
    let local_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    group.bench_function("answer", |b| {
        b.iter(|| sdp::answer(local_ip, 20000, black_box(&negotiated), 42))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = quick(); targets = sip_benches, sdp_benches }
criterion_main!(benches);

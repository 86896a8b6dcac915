//! SDP offer/answer (RFC 3264) for G.711 audio with RFC 4733 telephone-events (R29).
//! Pure: bytes in, decisions and SDP text out. Parsing and serialising are `rtc-sdp`'s.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use rtc_sdp::SessionDescription;
use rtc_sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc_sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc_sdp::description::session::{Origin, TimeDescription, Timing};

use crate::media::g711::Codec;

/// The payload type we use for telephone-events when the offer has none to copy.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

/// The encoding name of RFC 4733 events in `a=rtpmap`.
const TELEPHONE_EVENT: &str = "telephone-event";
/// G.711 and the events we speak run at 8 kHz.
const CLOCK_RATE: u32 = 8000;

/// Why an offer cannot be accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// The body is not SDP, or misses what a usable offer must have (the address).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream with a non-zero port over RTP/AVP: nothing to answer (488).
    #[error("the offer has no usable audio stream")]
    NoAudio,
    /// Audio is offered, but in none of the codecs we support (488).
    #[error("the offer has no codec in common with us")]
    NoCommonCodec,
}

/// One `m=` line of the offer, kept so the answer can mirror the offer's streams: RFC 3264
/// §6 wants the same number of `m=` lines, in order, refused ones with port 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedStream {
    pub media: String,
    pub proto: String,
    pub formats: Vec<String>,
}

/// What the offer and our capabilities agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (until symmetric RTP learns the real source).
    pub remote_rtp: SocketAddr,
    /// The first codec in the offer's preference order that we support.
    pub codec: Codec,
    /// The offerer's telephone-event payload type, if it offered one at 8 kHz.
    pub remote_telephone_event_pt: Option<u8>,
    /// Every `m=` line of the offer, in order; empty for a negotiation not built from an
    /// offer, which is answered with the audio stream alone.
    pub offered_streams: Vec<OfferedStream>,
    /// Which of `offered_streams` is the audio stream we accepted.
    pub audio_stream_index: usize,
}

/// Picks the audio stream, codec and RTP address from an offer (RFC 3264 §6.1).
///
/// The first audio stream over RTP/AVP with a non-zero port is used (port 0 marks a stream
/// the offerer disabled). Its codec is the first format, in the offer's order, that is in
/// `supported`; PCMU and PCMA are recognised at their static payload types 0 and 8, with
/// or without `a=rtpmap`. The address is the stream's `c=`, else the session's.
pub fn negotiate(offer: &[u8], supported: &[Codec]) -> Result<Negotiated, SdpError> {
    let session = SessionDescription::unmarshal(&mut Cursor::new(offer))
        .map_err(|e| SdpError::Malformed(e.to_string()))?;
    let offered_streams: Vec<OfferedStream> = session
        .media_descriptions
        .iter()
        .map(|md| OfferedStream {
            media: md.media_name.media.clone(),
            proto: md.media_name.protos.join("/"),
            formats: md.media_name.formats.clone(),
        })
        .collect();
    let (audio_stream_index, audio) = session
        .media_descriptions
        .iter()
        .enumerate()
        .find(|(_, md)| {
            md.media_name.media == "audio"
                && md.media_name.port.value != 0
                && md.media_name.protos.join("/") == "RTP/AVP"
        })
        .ok_or(SdpError::NoAudio)?;

    let rtpmaps = audio.codecs();
    let encoding_of = |payload_type: u8| -> Option<(String, u32)> {
        rtpmaps
            .get(&payload_type)
            .map(|codec| (codec.name.to_ascii_lowercase(), codec.clock_rate))
    };
    let mut chosen = None;
    let mut telephone_event_pt = None;
    for format in &audio.media_name.formats {
        let Ok(payload_type) = format.parse::<u8>() else {
            continue;
        };
        match encoding_of(payload_type) {
            Some((name, rate)) if name == TELEPHONE_EVENT && rate == CLOCK_RATE => {
                telephone_event_pt.get_or_insert(payload_type);
            }
            Some((name, rate)) => {
                // A static payload type must carry its RFC 3551 meaning; dynamic PCMU is
                // too rare to be worth renumbering our packets for.
                let codec = Codec::from_payload_type(payload_type).filter(|codec| {
                    name.eq_ignore_ascii_case(codec.encoding_name()) && rate == CLOCK_RATE
                });
                if chosen.is_none() {
                    chosen = codec.filter(|codec| supported.contains(codec));
                }
            }
            None => {
                if chosen.is_none() {
                    chosen = Codec::from_payload_type(payload_type)
                        .filter(|codec| supported.contains(codec));
                }
            }
        }
    }
    let codec = chosen.ok_or(SdpError::NoCommonCodec)?;

    let connection = audio
        .connection_information
        .as_ref()
        .or(session.connection_information.as_ref())
        .and_then(|c| c.address.as_ref())
        .ok_or_else(|| SdpError::Malformed("no connection address (c=)".to_string()))?;
    let ip: IpAddr = connection.address.parse().map_err(|_| {
        SdpError::Malformed(format!(
            "connection address {:?} is not an IP address",
            connection.address
        ))
    })?;
    let port = u16::try_from(audio.media_name.port.value)
        .map_err(|_| SdpError::Malformed("audio port out of range".to_string()))?;

    Ok(Negotiated {
        remote_rtp: SocketAddr::new(ip, port),
        codec,
        remote_telephone_event_pt: telephone_event_pt,
        offered_streams,
        audio_stream_index,
    })
}

/// Answers an offer: the chosen codec plus telephone-events (the offerer's payload type,
/// or 101), `ptime:20` and `sendrecv` on our RTP port; other offered streams refused.
pub fn answer(local_ip: IpAddr, local_port: u16, neg: &Negotiated, session_id: u64) -> String {
    let telephone_event_pt = neg
        .remote_telephone_event_pt
        .unwrap_or(DEFAULT_TELEPHONE_EVENT_PT);
    let audio = audio_description(local_port, &[neg.codec], telephone_event_pt);
    let media = if neg.offered_streams.is_empty() {
        vec![audio]
    } else {
        let mut audio = Some(audio);
        neg.offered_streams
            .iter()
            .enumerate()
            .map(
                |(index, stream)| match audio.take_if(|_| index == neg.audio_stream_index) {
                    Some(audio) => audio,
                    None => refused_description(stream),
                },
            )
            .collect()
    };
    session_description(local_ip, session_id, media).marshal()
}

/// An offer for a leg we originate: the given codecs in order of preference, plus
/// telephone-events at payload type 101.
pub fn offer(local_ip: IpAddr, local_port: u16, codecs: &[Codec], session_id: u64) -> String {
    let audio = audio_description(local_port, codecs, DEFAULT_TELEPHONE_EVENT_PT);
    session_description(local_ip, session_id, vec![audio]).marshal()
}

fn address_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_description(
    local_ip: IpAddr,
    session_id: u64,
    media_descriptions: Vec<MediaDescription>,
) -> SessionDescription {
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "hotline".to_string(),
            session_id,
            session_version: session_id,
            network_type: "IN".to_string(),
            address_type: address_type(local_ip).to_string(),
            unicast_address: local_ip.to_string(),
        },
        session_name: "hotline".to_string(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".to_string(),
            address_type: address_type(local_ip).to_string(),
            address: Some(Address {
                address: local_ip.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: Vec::new(),
        }],
        media_descriptions,
        ..SessionDescription::default()
    }
}

fn audio_description(port: u16, codecs: &[Codec], telephone_event_pt: u8) -> MediaDescription {
    let mut formats: Vec<String> = codecs
        .iter()
        .map(|codec| codec.payload_type().to_string())
        .collect();
    formats.push(telephone_event_pt.to_string());
    let mut attributes: Vec<Attribute> = codecs
        .iter()
        .map(|codec| {
            value_attribute(
                "rtpmap",
                format!(
                    "{} {}/{CLOCK_RATE}",
                    codec.payload_type(),
                    codec.encoding_name()
                ),
            )
        })
        .collect();
    attributes.extend([
        value_attribute(
            "rtpmap",
            format!("{telephone_event_pt} {TELEPHONE_EVENT}/{CLOCK_RATE}"),
        ),
        // Events 0-16: the keypad plus flash (RFC 4733 §3.2).
        value_attribute("fmtp", format!("{telephone_event_pt} 0-16")),
        value_attribute("ptime", "20".to_string()),
        Attribute::new("sendrecv".to_string(), None),
    ]);
    MediaDescription {
        media_name: MediaName {
            media: "audio".to_string(),
            port: RangedPort {
                value: port as isize,
                range: None,
            },
            protos: vec!["RTP".to_string(), "AVP".to_string()],
            formats,
        },
        attributes,
        ..MediaDescription::default()
    }
}

fn refused_description(stream: &OfferedStream) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: stream.media.clone(),
            port: RangedPort {
                value: 0,
                range: None,
            },
            protos: stream.proto.split('/').map(str::to_string).collect(),
            // An m= line needs at least one format; the offer's first one will do.
            formats: stream.formats.iter().take(1).cloned().collect(),
        },
        ..MediaDescription::default()
    }
}

fn value_attribute(key: &str, value: String) -> Attribute {
    Attribute::new(key.to_string(), Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];
    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));

    fn crlf(lines: &[&str]) -> Vec<u8> {
        let mut sdp = lines.join("\r\n");
        sdp.push_str("\r\n");
        sdp.into_bytes()
    }

    fn sipp_offer() -> Vec<u8> {
        crlf(&[
            "v=0",
            "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
        ])
    }

    fn parse_back(sdp: &str) -> SessionDescription {
        SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).expect("our SDP parses")
    }

    #[test]
    fn sipp_default_offer_r32() {
        let neg = negotiate(&sipp_offer(), BOTH).expect("acceptable offer");
        assert_eq!(neg.remote_rtp, "127.0.0.1:6000".parse().expect("addr"));
        assert_eq!(neg.codec, Codec::Pcmu);
        assert_eq!(neg.remote_telephone_event_pt, None);
        assert_eq!(neg.audio_stream_index, 0);
        // Some user agents end lines with a bare LF; accept them too.
        let lf_only = String::from_utf8(sipp_offer())
            .expect("utf-8")
            .replace("\r\n", "\n");
        assert_eq!(negotiate(lf_only.as_bytes(), BOTH), Ok(neg));
    }

    #[test]
    fn pcma_only_offer_without_rtpmap() {
        let offer = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 49170 RTP/AVP 8",
        ]);
        let neg = negotiate(&offer, BOTH).expect("acceptable offer");
        assert_eq!(neg.codec, Codec::Pcma);
        assert_eq!(neg.remote_rtp, "192.0.2.1:49170".parse().expect("addr"));
        assert_eq!(
            negotiate(&offer, &[Codec::Pcmu]),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn telephone_event_and_preference_order_and_media_level_address() {
        // Softphone style: G.729 first, then PCMA, PCMU, telephone-event on 96; the
        // media-level c= overrides the session's.
        let offer = crlf(&[
            "v=0",
            "o=- 2 2 IN IP4 198.51.100.1",
            "s=call",
            "c=IN IP4 198.51.100.1",
            "t=0 0",
            "m=audio 40000 RTP/AVP 18 8 0 96",
            "c=IN IP4 198.51.100.77",
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 pcmu/8000",
            "a=rtpmap:96 telephone-event/8000",
            "a=fmtp:96 0-15",
            "a=sendrecv",
        ]);
        let neg = negotiate(&offer, BOTH).expect("acceptable offer");
        assert_eq!(neg.codec, Codec::Pcma, "the offerer's preference wins");
        assert_eq!(neg.remote_telephone_event_pt, Some(96));
        assert_eq!(neg.remote_rtp, "198.51.100.77:40000".parse().expect("addr"));

        let answer = answer(LOCAL, 20000, &neg, 7);
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 8 96\r\n"),
            "{answer}"
        );
        assert!(answer.contains("a=rtpmap:96 telephone-event/8000\r\n"));
        assert!(answer.contains("a=fmtp:96 0-16\r\n"));
    }

    #[test]
    fn offer_with_telephone_event_101() {
        let offer = crlf(&[
            "v=0",
            "o=- 3 3 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
        ]);
        let neg = negotiate(&offer, BOTH).expect("acceptable offer");
        assert_eq!(neg.codec, Codec::Pcmu);
        assert_eq!(neg.remote_telephone_event_pt, Some(101));
    }

    #[test]
    fn g729_only_offer_has_no_common_codec() {
        let offer = crlf(&[
            "v=0",
            "o=- 4 4 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 18 101",
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        assert_eq!(negotiate(&offer, BOTH), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn static_payload_type_remapped_to_another_codec_is_not_g711() {
        let offer = crlf(&[
            "v=0",
            "o=- 4 4 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "a=rtpmap:0 opus/48000/2",
        ]);
        assert_eq!(negotiate(&offer, BOTH), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            negotiate(b"hello world", BOTH),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(negotiate(b"", BOTH), Err(SdpError::Malformed(_))));
        assert!(matches!(
            negotiate(&[0xFF, 0xFE, 0x00, 0x13], BOTH),
            Err(SdpError::Malformed(_))
        ));
    }

    #[test]
    fn missing_or_unusable_connection_address_is_malformed() {
        let no_c = crlf(&[
            "v=0",
            "o=- 5 5 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
        ]);
        assert!(matches!(negotiate(&no_c, BOTH), Err(SdpError::Malformed(m)) if m.contains("c=")));
        let hostname = crlf(&[
            "v=0",
            "o=- 5 5 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 pbx.example.net",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
        ]);
        assert!(matches!(
            negotiate(&hostname, BOTH),
            Err(SdpError::Malformed(_))
        ));
    }

    #[test]
    fn rejected_and_non_audio_streams_are_skipped() {
        let offer = crlf(&[
            "v=0",
            "o=- 6 6 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=video 5000 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "m=audio 0 RTP/AVP 0",
            "m=audio 7000 RTP/AVP 8 0",
        ]);
        let neg = negotiate(&offer, BOTH).expect("third stream usable");
        assert_eq!(neg.audio_stream_index, 2);
        assert_eq!(neg.remote_rtp.port(), 7000);
        assert_eq!(neg.codec, Codec::Pcma);

        // RFC 3264 §6: the answer mirrors all three m= lines, refusing the others.
        let answer = answer(LOCAL, 20000, &neg, 9);
        let parsed = parse_back(&answer);
        let ports: Vec<(String, isize)> = parsed
            .media_descriptions
            .iter()
            .map(|md| (md.media_name.media.clone(), md.media_name.port.value))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("video".to_string(), 0),
                ("audio".to_string(), 0),
                ("audio".to_string(), 20000)
            ]
        );

        let only_rejected = crlf(&[
            "v=0",
            "o=- 6 6 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 0 RTP/AVP 0",
        ]);
        assert_eq!(negotiate(&only_rejected, BOTH), Err(SdpError::NoAudio));
        let video_only = crlf(&[
            "v=0",
            "o=- 6 6 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=video 5000 RTP/AVP 96",
        ]);
        assert_eq!(negotiate(&video_only, BOTH), Err(SdpError::NoAudio));
        let srtp = crlf(&[
            "v=0",
            "o=- 6 6 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 5000 RTP/SAVP 0",
        ]);
        assert_eq!(negotiate(&srtp, BOTH), Err(SdpError::NoAudio));
    }

    #[test]
    fn answer_parses_back_and_negotiates_to_the_same_codec_r29() {
        let neg = negotiate(&sipp_offer(), BOTH).expect("acceptable offer");
        let answer = answer(LOCAL, 20000, &neg, 1234);
        assert!(answer.contains("\r\n"));
        assert!(
            !answer.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 0 101\r\n"),
            "{answer}"
        );
        assert!(answer.contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert!(answer.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(answer.contains("a=fmtp:101 0-16\r\n"));
        assert!(answer.contains("a=ptime:20\r\n"));
        assert!(answer.contains("a=sendrecv\r\n"));

        let parsed = parse_back(&answer);
        assert_eq!(parsed.origin.session_id, 1234);
        assert_eq!(parsed.media_descriptions.len(), 1);
        // The answer is itself acceptable: the engine's outbound legs take the same path.
        let back = negotiate(answer.as_bytes(), BOTH).expect("answer negotiates");
        assert_eq!(back.codec, Codec::Pcmu);
        assert_eq!(back.remote_rtp, SocketAddr::new(LOCAL, 20000));
        assert_eq!(back.remote_telephone_event_pt, Some(101));
    }

    #[test]
    fn offer_lists_codecs_in_preference_order_with_telephone_event() {
        let ip: IpAddr = "2001:db8::5".parse().expect("ipv6");
        let offer = offer(ip, 30000, BOTH, 99);
        assert!(offer.contains("c=IN IP6 2001:db8::5\r\n"), "{offer}");
        assert!(
            offer.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"),
            "{offer}"
        );
        assert!(offer.contains("a=rtpmap:8 PCMA/8000\r\n"));
        let neg = negotiate(offer.as_bytes(), &[Codec::Pcma]).expect("our offer negotiates");
        assert_eq!(neg.codec, Codec::Pcma);
        assert_eq!(neg.remote_rtp, SocketAddr::new(ip, 30000));
        assert_eq!(neg.remote_telephone_event_pt, Some(101));
    }

    #[test]
    fn answer_without_offered_streams_has_audio_only() {
        let neg = Negotiated {
            remote_rtp: "127.0.0.1:6000".parse().expect("addr"),
            codec: Codec::Pcma,
            remote_telephone_event_pt: None,
            offered_streams: Vec::new(),
            audio_stream_index: 0,
        };
        let parsed = parse_back(&answer(LOCAL, 20002, &neg, 1));
        assert_eq!(parsed.media_descriptions.len(), 1);
        assert_eq!(
            parsed.media_descriptions[0].media_name.formats,
            ["8", "101"]
        );
    }

    proptest! {
        #[test]
        fn negotiate_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = negotiate(&body, BOTH);
        }

        #[test]
        fn negotiate_never_panics_on_mangled_offers(cut in 0usize..200, byte in any::<u8>(), at in 0usize..200) {
            let mut offer = sipp_offer();
            if at < offer.len() {
                offer[at] = byte;
            }
            offer.truncate(cut.min(offer.len()));
            let _ = negotiate(&offer, BOTH);
        }
    }
}

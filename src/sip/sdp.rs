//! SDP offer/answer (RFC 3264) for G.711 audio with RFC 4733 telephone-events (R29):
//! answering an offer (with the direction hold asks for, §6.1 and §8.4), reading the
//! answer to our own offer (late offer, RFC 3261 §13.2.1), and the `o=` version that
//! moves with every changed description we send (RFC 3264 §8, [`LocalSession`]).
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
    /// An answer to our offer breaks RFC 3264 §6: another number of `m=` lines, or a
    /// codec we did not offer.
    #[error("the answer does not fit our offer: {0}")]
    AnswerMismatch(String),
}

/// The direction of a media stream (RFC 3264 §5.1, §6.1), from the describing side's
/// point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The `a=` attribute name.
    pub fn as_attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|direction| name.eq_ignore_ascii_case(direction.as_attribute()))
    }

    /// The direction an answerer that is willing to send and receive gives to an offer
    /// of this direction (RFC 3264 §6.1): sendonly → recvonly, recvonly → sendonly,
    /// inactive → inactive, sendrecv → sendrecv.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the describing side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
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
    /// The direction of the described audio stream, from the describer's side: its
    /// `a=` attribute (media level, else session level, else sendrecv). The RFC 2543
    /// hold, `c=0.0.0.0`, reads as sendonly (RFC 3264 §8.4: the describer wants no
    /// media sent to it). An offer on hold is answered `direction.answer()`.
    pub direction: Direction,
    /// The connection address was `0.0.0.0` (the RFC 2543 hold): send nothing.
    pub zero_address_hold: bool,
    /// The describer's `o=` session id and version. A re-offer with the version of the
    /// previous one changes nothing (RFC 3264 §8): a session refresh, answered with the
    /// same description.
    pub origin: (u64, u64),
}

impl Negotiated {
    /// Whether we may send media to the peer (it receives, and has an address).
    pub fn peer_receives(&self) -> bool {
        self.direction.receives() && !self.zero_address_hold
    }

    /// Whether the peer says it will send media to us.
    pub fn peer_sends(&self) -> bool {
        self.direction.sends()
    }
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
    let direction_of = |attributes: &[Attribute]| {
        attributes
            .iter()
            .find_map(|attribute| Direction::from_attribute(&attribute.key))
    };
    let zero_address_hold = ip.is_unspecified();
    let mut direction = direction_of(&audio.attributes)
        .or_else(|| direction_of(&session.attributes))
        .unwrap_or_default();
    if zero_address_hold && direction == Direction::SendRecv {
        direction = Direction::SendOnly;
    } else if zero_address_hold && direction == Direction::RecvOnly {
        direction = Direction::Inactive;
    }

    Ok(Negotiated {
        remote_rtp: SocketAddr::new(ip, port),
        codec,
        remote_telephone_event_pt: telephone_event_pt,
        offered_streams,
        audio_stream_index,
        direction,
        zero_address_hold,
        origin: (session.origin.session_id, session.origin.session_version),
    })
}

/// Answers an offer: the chosen codec plus telephone-events (the offerer's payload type,
/// or 101), `ptime:20` and the direction that answers the offer's (RFC 3264 §6.1: a
/// hold's sendonly gets recvonly, inactive gets inactive) on our RTP port; other offered
/// streams refused. `o=` version equals the session id; a dialog that sends several
/// descriptions uses [`LocalSession`] instead.
pub fn answer(local_ip: IpAddr, local_port: u16, neg: &Negotiated, session_id: u64) -> String {
    answer_sdp(local_ip, local_port, neg, session_id, session_id)
}

fn answer_sdp(
    local_ip: IpAddr,
    local_port: u16,
    neg: &Negotiated,
    session_id: u64,
    session_version: u64,
) -> String {
    let telephone_event_pt = neg
        .remote_telephone_event_pt
        .unwrap_or(DEFAULT_TELEPHONE_EVENT_PT);
    let audio = audio_description(
        local_port,
        &[neg.codec],
        telephone_event_pt,
        neg.direction.answer(),
    );
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
    session_description(local_ip, session_id, session_version, media).marshal()
}

/// An offer for a leg we originate: the given codecs in order of preference, plus
/// telephone-events at payload type 101, sendrecv.
pub fn offer(local_ip: IpAddr, local_port: u16, codecs: &[Codec], session_id: u64) -> String {
    offer_sdp(
        local_ip,
        local_port,
        codecs,
        Direction::SendRecv,
        session_id,
        session_id,
    )
}

fn offer_sdp(
    local_ip: IpAddr,
    local_port: u16,
    codecs: &[Codec],
    direction: Direction,
    session_id: u64,
    session_version: u64,
) -> String {
    let audio = audio_description(local_port, codecs, DEFAULT_TELEPHONE_EVENT_PT, direction);
    session_description(local_ip, session_id, session_version, vec![audio]).marshal()
}

/// Reads the answer to an offer we made with `offered` codecs: in a 2xx to our INVITE,
/// or, for a late offer (RFC 3261 §13.2.1: an INVITE without SDP gets our offer in the
/// 2xx), in the peer's ACK. RFC 3264 §6 holds the answerer to one `m=` line per offered
/// one and to codecs from the offer; the codec used is the first of the answer's that
/// we offered. A refused audio stream (port 0) is [`SdpError::NoAudio`].
pub fn read_answer(
    answer: &[u8],
    offered: &[Codec],
    offered_streams: usize,
) -> Result<Negotiated, SdpError> {
    let negotiated = match negotiate(answer, offered) {
        Err(SdpError::NoCommonCodec) => {
            return Err(SdpError::AnswerMismatch(
                "it names no codec we offered".to_string(),
            ));
        }
        other => other?,
    };
    if negotiated.offered_streams.len() != offered_streams {
        return Err(SdpError::AnswerMismatch(format!(
            "{} m= lines for the {offered_streams} we offered",
            negotiated.offered_streams.len()
        )));
    }
    Ok(negotiated)
}

/// The descriptions we send in one dialog, with the `o=` line RFC 3264 §8 asks for:
/// the same session id throughout, and a version that increments by one each time the
/// description changes and stays when it is sent again unchanged (a session refresh
/// re-INVITE answered with the same media keeps its version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSession {
    pub session_id: u64,
    pub version: u64,
    /// The last description sent, without its `o=` line, to tell a change.
    last_media: Option<String>,
}

impl LocalSession {
    /// A session whose first description has version `session_id` (RFC 4566 §5.2 only
    /// asks for a number; a random start from `IdGenerator::sdp_session_id` is usual).
    pub fn new(session_id: u64) -> LocalSession {
        LocalSession {
            session_id,
            version: session_id,
            last_media: None,
        }
    }

    /// Our offer (an INVITE, a re-INVITE, or the 2xx of a late offer).
    pub fn offer(
        &mut self,
        local_ip: IpAddr,
        local_port: u16,
        codecs: &[Codec],
        direction: Direction,
    ) -> String {
        self.versioned(|id, version| {
            offer_sdp(local_ip, local_port, codecs, direction, id, version)
        })
    }

    /// Our answer to an offer, with the direction that answers the offer's.
    pub fn answer(&mut self, local_ip: IpAddr, local_port: u16, neg: &Negotiated) -> String {
        self.versioned(|id, version| answer_sdp(local_ip, local_port, neg, id, version))
    }

    fn versioned(&mut self, describe: impl Fn(u64, u64) -> String) -> String {
        let candidate = describe(self.session_id, self.version);
        let media = without_origin(&candidate);
        match &self.last_media {
            None => {
                self.last_media = Some(media);
                candidate
            }
            Some(last) if *last == media => candidate,
            Some(_) => {
                self.version = self.version.saturating_add(1);
                self.last_media = Some(media);
                describe(self.session_id, self.version)
            }
        }
    }
}

fn without_origin(sdp: &str) -> String {
    sdp.lines()
        .filter(|line| !line.starts_with("o="))
        .collect::<Vec<_>>()
        .join("\n")
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
    session_version: u64,
    media_descriptions: Vec<MediaDescription>,
) -> SessionDescription {
    SessionDescription {
        version: 0,
        origin: Origin {
            username: "hotline".to_string(),
            session_id,
            session_version,
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

fn audio_description(
    port: u16,
    codecs: &[Codec],
    telephone_event_pt: u8,
    direction: Direction,
) -> MediaDescription {
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
        Attribute::new(direction.as_attribute().to_string(), None),
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
        assert_eq!(
            neg.remote_rtp,
            "127.0.0.1:6000"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
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
        assert_eq!(
            neg.remote_rtp,
            "192.0.2.1:49170"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
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
        assert_eq!(
            neg.remote_rtp,
            "198.51.100.77:40000"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );

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
            direction: Direction::SendRecv,
            zero_address_hold: false,
            origin: (0, 0),
        };
        let parsed = parse_back(&answer(LOCAL, 20002, &neg, 1));
        assert_eq!(parsed.media_descriptions.len(), 1);
        assert_eq!(
            parsed.media_descriptions[0].media_name.formats,
            ["8", "101"]
        );
    }

    fn linphone_hold_offer() -> Vec<u8> {
        // Linphone 5 putting the call on hold: a re-INVITE with its full codec list and
        // a=sendonly; telephone-event at three clock rates.
        crlf(&[
            "v=0",
            "o=alice 3056 3057 IN IP4 192.168.1.20",
            "s=Talk",
            "c=IN IP4 192.168.1.20",
            "t=0 0",
            "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
            "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtpmap:97 speex/16000",
            "a=fmtp:97 vbr=on",
            "a=rtpmap:98 speex/8000",
            "a=fmtp:98 vbr=on",
            "a=fmtp:18 annexb=yes",
            "a=rtpmap:101 telephone-event/48000",
            "a=rtpmap:99 telephone-event/16000",
            "a=rtpmap:100 telephone-event/8000",
            "a=sendonly",
            "a=rtcp-fb:* trr-int 1000",
            "a=rtcp-fb:* ccm tmmbr",
        ])
    }

    fn baresip_offer(direction: &str) -> Vec<u8> {
        crlf(&[
            "v=0",
            "o=- 1294598870 2216371939 IN IP4 10.0.0.2",
            "s=-",
            "c=IN IP4 10.0.0.2",
            "t=0 0",
            "a=tool:baresip 3.10.1",
            "m=audio 10364 RTP/AVP 96 9 0 8 101",
            "b=AS:128",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 stereo=1;sprop-stereo=1",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            direction,
            "a=rtcp-mux",
            "a=ptime:20",
        ])
    }

    fn direction_line(sdp: &str) -> Vec<&str> {
        sdp.lines()
            .filter(|line| Direction::from_attribute(line.trim_start_matches("a=")).is_some())
            .collect()
    }

    #[test]
    fn linphone_hold_is_answered_recvonly_rfc3264_8_4() {
        let neg = negotiate(&linphone_hold_offer(), BOTH).expect("hold offer");
        assert_eq!(neg.direction, Direction::SendOnly);
        assert!(!neg.zero_address_hold);
        assert!(neg.peer_sends() && !neg.peer_receives());
        assert_eq!(neg.codec, Codec::Pcmu);
        assert_eq!(neg.remote_telephone_event_pt, Some(100), "the 8 kHz one");
        assert_eq!(neg.origin, (3056, 3057));
        let answer = answer(LOCAL, 20000, &neg, 5);
        assert_eq!(direction_line(&answer), ["a=recvonly"], "{answer}");
        assert_eq!(
            negotiate(answer.as_bytes(), BOTH).expect("ours").direction,
            Direction::RecvOnly
        );
    }

    #[test]
    fn each_offered_direction_gets_its_answer_rfc3264_6_1() {
        for (offered, answered) in [
            ("a=sendrecv", "a=sendrecv"),
            ("a=sendonly", "a=recvonly"),
            ("a=recvonly", "a=sendonly"),
            ("a=inactive", "a=inactive"),
            ("a=ptime:20", "a=sendrecv"), // no attribute: sendrecv (RFC 3264 §5.1)
        ] {
            let neg = negotiate(&baresip_offer(offered), BOTH).expect(offered);
            assert_eq!(neg.codec, Codec::Pcmu, "G722 and opus are not ours");
            let answer = answer(LOCAL, 20000, &neg, 5);
            assert_eq!(direction_line(&answer), [answered], "{offered}: {answer}");
        }
        let inactive = negotiate(&baresip_offer("a=inactive"), BOTH).expect("inactive");
        assert!(!inactive.peer_sends() && !inactive.peer_receives());
    }

    #[test]
    fn session_level_direction_applies_when_the_stream_has_none_rfc4566_6() {
        let offer = crlf(&[
            "v=0",
            "o=- 8 9 IN IP4 192.0.2.7",
            "s=-",
            "c=IN IP4 192.0.2.7",
            "t=0 0",
            "a=sendonly",
            "m=audio 4000 RTP/AVP 8",
        ]);
        assert_eq!(
            negotiate(&offer, BOTH).expect("offer").direction,
            Direction::SendOnly
        );
        let media_wins = crlf(&[
            "v=0",
            "o=- 8 9 IN IP4 192.0.2.7",
            "s=-",
            "c=IN IP4 192.0.2.7",
            "t=0 0",
            "a=sendonly",
            "m=audio 4000 RTP/AVP 8",
            "a=inactive",
        ]);
        assert_eq!(
            negotiate(&media_wins, BOTH).expect("offer").direction,
            Direction::Inactive
        );
    }

    #[test]
    fn rfc2543_hold_with_zero_address_reads_as_sendonly_rfc3264_8_4() {
        let offer = crlf(&[
            "v=0",
            "o=user1 53655765 2353687638 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
        ]);
        let neg = negotiate(&offer, BOTH).expect("old hold");
        assert!(neg.zero_address_hold);
        assert_eq!(neg.direction, Direction::SendOnly);
        assert!(!neg.peer_receives(), "never send to 0.0.0.0");
        assert_eq!(
            direction_line(&answer(LOCAL, 20000, &neg, 1)),
            ["a=recvonly"]
        );
    }

    #[test]
    fn sipp_style_unhold_is_sendrecv_again() {
        let neg = negotiate(&sipp_offer(), BOTH).expect("offer");
        assert_eq!(neg.direction, Direction::SendRecv);
        assert!(neg.peer_sends() && neg.peer_receives());
    }

    #[test]
    fn origin_version_moves_only_when_the_description_changes_rfc3264_8() {
        let mut session = LocalSession::new(1000);
        let version_of = |sdp: &str| parse_back(sdp).origin.session_version;
        let id_of = |sdp: &str| parse_back(sdp).origin.session_id;
        let unhold = negotiate(&baresip_offer("a=sendrecv"), BOTH).expect("offer");
        let hold = negotiate(&baresip_offer("a=sendonly"), BOTH).expect("hold");

        let first = session.answer(LOCAL, 20000, &unhold);
        assert_eq!((id_of(&first), version_of(&first)), (1000, 1000));
        // A session refresh answered with the same media: same version.
        let refresh = session.answer(LOCAL, 20000, &unhold);
        assert_eq!(refresh, first);
        let held = session.answer(LOCAL, 20000, &hold);
        assert_eq!((id_of(&held), version_of(&held)), (1000, 1001));
        assert_eq!(direction_line(&held), ["a=recvonly"]);
        let resumed = session.answer(LOCAL, 20000, &unhold);
        assert_eq!(version_of(&resumed), 1002);
        // Our own re-offer in the same session continues the count.
        let reoffer = session.offer(LOCAL, 20000, BOTH, Direction::SendRecv);
        assert_eq!(version_of(&reoffer), 1003);
        assert_eq!(session.version, 1003);
    }

    #[test]
    fn late_offer_answer_in_the_ack_is_read_against_our_offer_rfc3261_13_2_1() {
        // An INVITE without SDP: our offer goes in the 2xx, the caller's answer in the ACK.
        let mut session = LocalSession::new(77);
        let our_offer = session.offer(LOCAL, 20000, BOTH, Direction::SendRecv);
        let offered = negotiate(our_offer.as_bytes(), BOTH).expect("our offer");
        assert_eq!(offered.offered_streams.len(), 1);
        // What SIPp's uac_late_offer puts in the ACK.
        let ack_answer = crlf(&[
            "v=0",
            "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 8 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        let neg = read_answer(&ack_answer, BOTH, 1).expect("a fitting answer");
        assert_eq!(neg.codec, Codec::Pcma);
        assert_eq!(
            neg.remote_rtp,
            "127.0.0.1:6000"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
        assert_eq!(neg.remote_telephone_event_pt, Some(101));
        assert_eq!(neg.direction, Direction::SendRecv);
    }

    #[test]
    fn answers_that_break_rfc3264_6_are_refused() {
        let g729 = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 18",
            "a=rtpmap:18 G729/8000",
        ]);
        assert!(matches!(
            read_answer(&g729, BOTH, 1),
            Err(SdpError::AnswerMismatch(_))
        ));
        // PCMA answered to an offer of PCMU alone.
        let pcma = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 8",
        ]);
        assert!(matches!(
            read_answer(&pcma, &[Codec::Pcmu], 1),
            Err(SdpError::AnswerMismatch(_))
        ));
        let two_streams = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 6000 RTP/AVP 0",
            "m=video 0 RTP/AVP 96",
        ]);
        assert!(matches!(
            read_answer(&two_streams, BOTH, 1),
            Err(SdpError::AnswerMismatch(_))
        ));
        let refused = crlf(&[
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 0 RTP/AVP 0",
        ]);
        assert_eq!(read_answer(&refused, BOTH, 1), Err(SdpError::NoAudio));
        assert!(matches!(
            read_answer(b"", BOTH, 1),
            Err(SdpError::Malformed(_))
        ));
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

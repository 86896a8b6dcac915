//! Feature codes dialled from an agent's softphone (I/O): `*21` log in, `*22` log out,
//! `*23` pause, `*24` resume. The call is challenged with digest like a REGISTER (the
//! credentials name the agent), answered, a short confirmation is played, and the
//! engine hangs up. No work order, no recording: it is not a citizen's call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::driver::{CallEvent, CallSetup};
use crate::media::prompt::Prompt;
use crate::media::session::{self, MediaCommand, MediaEvent, MediaParams};
use crate::runtime::Shared;
use crate::runtime::agents::AgentRequest;
use crate::runtime::endpoint::EndpointCommand;
use crate::sip::dialog::{Dialog, ViaParams};
use crate::sip::message::{self, Header, StatusCode};
use crate::sip::sdp;
use crate::sip::transaction::{KeyMethod, TransactionKey};

/// The longest a confirmation may take before the engine hangs up anyway.
const PROMPT_LIMIT: Duration = Duration::from_secs(10);
/// How long to wait for the phone to answer our BYE.
const BYE_LIMIT: Duration = Duration::from_secs(5);

/// The request a dialled code stands for.
pub fn feature_code(dialled: &str) -> Option<AgentRequest> {
    match dialled {
        "*21" => Some(AgentRequest::Login),
        "*22" => Some(AgentRequest::Logout),
        "*23" => Some(AgentRequest::Pause),
        "*24" => Some(AgentRequest::Resume),
        _ => None,
    }
}

/// Runs one feature-code call to its end, then tells the endpoint.
pub async fn run(
    shared: Arc<Shared>,
    mut setup: CallSetup,
    request: AgentRequest,
    endpoint: mpsc::Sender<EndpointCommand>,
    mut events: mpsc::Receiver<CallEvent>,
) {
    let call_id = setup.summary.call_id.clone();
    let respond = |status: StatusCode, headers: Vec<Header>, body: Option<String>| {
        let code = u16::from(status.clone());
        let response = message::build_response(
            &setup.invite,
            status,
            Some(&setup.local_tag),
            headers,
            body.map(|b| ("application/sdp", b.into_bytes())),
        );
        EndpointCommand::Respond {
            key: setup.invite_key.clone(),
            status: code,
            payload: Bytes::from(response.to_string()),
        }
    };

    let agent = match shared.agents.authenticate(setup.invite.clone()).await {
        Ok(agent) => agent,
        Err(challenges) => {
            let headers = challenges
                .into_iter()
                .map(|c| message::make_header("WWW-Authenticate", c))
                .collect();
            let _ = endpoint
                .send(respond(StatusCode::Unauthorized, headers, None))
                .await;
            let _ = endpoint.send(EndpointCommand::Ended { call_id }).await;
            return;
        }
    };
    let prompts = &shared.prompts;
    let confirmation: Arc<Prompt> = match shared.agents.agent_request(&agent, request).await {
        Ok(_) => {
            info!(agent, ?request, "feature code");
            match request {
                AgentRequest::Login => prompts.agent_logged_in.clone(),
                AgentRequest::Logout => prompts.agent_logged_out.clone(),
                AgentRequest::Pause => prompts.agent_paused.clone(),
                AgentRequest::Resume => prompts.agent_resumed.clone(),
            }
        }
        Err(e) => {
            warn!(agent, ?request, error = %e, "feature code refused");
            prompts.feature_failed.clone()
        }
    };

    let Some(socket) = setup.rtp_socket.take() else {
        let _ = endpoint.send(EndpointCommand::Ended { call_id }).await;
        return;
    };
    let media = session::spawn(
        socket,
        MediaParams {
            remote: setup.negotiated.remote_rtp,
            codec: setup.negotiated.codec,
            telephone_event_pt: setup.negotiated.remote_telephone_event_pt,
            ssrc: rand::random(),
        },
        None,
    );
    let _ = media.commands.send(MediaCommand::Play(confirmation)).await;
    let answer = sdp::answer(
        shared.config.sip.advertised_ip,
        setup.local_rtp.port(),
        &setup.negotiated,
        rand::random::<u32>().into(),
    );
    let ip = shared.config.sip.advertised_ip;
    let port = shared.local_port(setup.transport);
    let contact = message::make_header("Contact", format!("<sip:hotline@{ip}:{port}>"));
    let _ = endpoint
        .send(respond(StatusCode::OK, vec![contact], Some(answer)))
        .await;

    // Until the confirmation has played or the agent hangs up.
    let mut media = media;
    let caller_left = tokio::time::timeout(PROMPT_LIMIT, async {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(CallEvent::CallerHungUp) | None => return true,
                    Some(_) => {}
                },
                event = media.events.recv() => match event {
                    Some(MediaEvent::PlaybackFinished) | None => return false,
                    Some(MediaEvent::Dtmf(_)) => {}
                },
            }
        }
    })
    .await
    .unwrap_or(false);
    media.stop().await;

    if !caller_left {
        let mut dialog = Dialog::new_uas(setup.dialog.clone(), &setup.local_tag);
        let branch = message::new_branch();
        let host = ip.to_string();
        let bye = dialog.build_bye(&ViaParams {
            host: &host,
            port,
            transport: setup.transport.into(),
            branch: &branch,
        });
        let key = TransactionKey::rfc3261(
            &branch,
            KeyMethod::from_name("BYE"),
            &format!("{host}:{port}"),
        );
        let _ = endpoint
            .send(EndpointCommand::SendRequest {
                call_id: call_id.clone(),
                key: key.clone(),
                destination: setup.source,
                transport: setup.transport,
                payload: Bytes::from(bye.to_string()),
            })
            .await;
        let _ = tokio::time::timeout(BYE_LIMIT, async {
            while let Some(event) = events.recv().await {
                match event {
                    CallEvent::Response { key: k, status, .. } if k == key && status >= 200 => {
                        return;
                    }
                    CallEvent::RequestTimedOut { key: k } if k == key => return,
                    CallEvent::CallerHungUp => return,
                    _ => {}
                }
            }
        })
        .await;
    }
    let _ = endpoint.send(EndpointCommand::Ended { call_id }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_feature_codes_and_nothing_else() {
        assert_eq!(feature_code("*21"), Some(AgentRequest::Login));
        assert_eq!(feature_code("*22"), Some(AgentRequest::Logout));
        assert_eq!(feature_code("*23"), Some(AgentRequest::Pause));
        assert_eq!(feature_code("*24"), Some(AgentRequest::Resume));
        assert_eq!(feature_code("*25"), None);
        assert_eq!(feature_code("8890"), None);
    }
}

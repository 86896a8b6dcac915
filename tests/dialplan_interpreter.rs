//! The IVR interpreter driven by scripted event sequences on a simulated clock, on the
//! shipped `dialplans/8890.toml` and on small plans for the node kinds it does not use.
//! No sockets: what the switch would do is read from the returned actions.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::config::Config;
use hotline::config::agents::AgentsConfig;
use hotline::ivr::{
    Action, AgentScript, CallIvr, Dialplan, DialplanSlot, Event, IvrError, PlayId, WorkOrderWrite,
    compile,
};
use hotline::workorder::Category;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_queues() -> Vec<String> {
    let agents = AgentsConfig::load(&repo().join("config/agents.toml")).expect("agents file");
    agents.queues.iter().map(|q| q.name.clone()).collect()
}

fn shipped_plan() -> Dialplan {
    hotline::ivr::load(
        &repo().join("dialplans/8890.toml"),
        &repo().join("dialplans/prompts"),
        &shipped_queues(),
    )
    .expect("the shipped dialplan compiles")
}

/// One call and a simulated clock; every action the IVR asked for is kept in `log`.
struct Call {
    ivr: CallIvr,
    now: Instant,
    last_play: Option<PlayId>,
    log: Vec<Action>,
}

impl Call {
    fn keep(&mut self, actions: &[Action]) {
        for a in actions {
            if let Action::Play { id, .. } = a {
                self.last_play = Some(*id);
            }
        }
        self.log.extend_from_slice(actions);
    }

    fn step(&mut self, event: Event) -> Vec<Action> {
        let actions = self.ivr.step(self.now, event);
        self.keep(&actions);
        actions
    }

    /// The prompt playing now ends.
    fn prompt_ends(&mut self) -> Vec<Action> {
        let id = self.last_play.expect("something is playing");
        self.step(Event::PromptFinished(id))
    }

    fn key(&mut self, key: char) -> Vec<Action> {
        self.step(Event::Digit(key))
    }

    /// Moves the clock to the IVR's next deadline and fires it.
    fn wait_for_deadline(&mut self) -> (Duration, Vec<Action>) {
        let at = self.ivr.poll_timeout().expect("a deadline is set");
        let waited = at - self.now;
        self.now = at;
        (waited, self.step(Event::Timeout))
    }

    fn agent_script(&mut self, script: AgentScript) -> Result<Vec<Action>, IvrError> {
        let actions = self.ivr.start_script(self.now, script)?;
        self.keep(&actions);
        Ok(actions)
    }
}

/// A call on `plan`, answered now; returns the actions of the start.
fn start(plan: Arc<Dialplan>) -> (Call, Vec<Action>) {
    let mut call = Call {
        ivr: CallIvr::new(plan),
        now: Instant::now(),
        last_play: None,
        log: Vec::new(),
    };
    let actions = call.ivr.start(call.now);
    call.keep(&actions);
    (call, actions)
}

fn play(prompts: &[&str]) -> Vec<String> {
    prompts.iter().map(|p| (*p).to_owned()).collect()
}

fn plays(actions: &[Action]) -> Vec<Vec<String>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play { prompts, .. } => Some(prompts.clone()),
            _ => None,
        })
        .collect()
}

fn enqueued(actions: &[Action]) -> Option<(String, u8)> {
    actions.iter().find_map(|a| match a {
        Action::Enqueue { queue, priority } => Some((queue.clone(), *priority)),
        _ => None,
    })
}

fn writes(actions: &[Action]) -> Vec<WorkOrderWrite> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::WorkOrder(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

fn shipped_call() -> (Call, Vec<Action>) {
    start(Arc::new(shipped_plan()))
}

/// A caller in the shipped plan who presses `key` during the greeting.
fn choose(key: char) -> Vec<Action> {
    let (mut call, _) = shipped_call();
    call.step(Event::VoiceStarted);
    call.key(key)
}

#[test]
fn the_greeting_and_menu_play_at_once_r27() {
    let (call, actions) = shipped_call();
    assert_eq!(plays(&actions), vec![play(&["greeting.wav", "menu.wav"])]);
    assert_eq!(call.ivr.current_node(), Some("welcome"));
    assert_eq!(
        call.ivr.poll_timeout(),
        None,
        "the timeout runs after the prompts"
    );
}

#[test]
fn each_menu_choice_reaches_its_queue_category_and_priority_r1_r15() {
    let consultation = choose('1');
    assert_eq!(
        consultation[0],
        Action::Stop,
        "a key interrupts the greeting"
    );
    assert_eq!(
        writes(&consultation),
        vec![WorkOrderWrite::Category(Category::Consultation)]
    );
    assert_eq!(enqueued(&consultation), Some(("general".into(), 0)));
    assert_eq!(
        plays(&consultation),
        vec![play(&["queue-wait.wav", "callback-offer.wav"])]
    );
    assert!(
        consultation.contains(&Action::Play {
            id: match consultation
                .iter()
                .find(|a| matches!(a, Action::Play { .. }))
            {
                Some(Action::Play { id, .. }) => *id,
                _ => unreachable!(),
            },
            prompts: play(&["queue-wait.wav", "callback-offer.wav"]),
            then_loop: Some("hold-music.wav".into()),
        })
    );

    let services = choose('2');
    assert_eq!(
        writes(&services),
        vec![WorkOrderWrite::Category(Category::Help)]
    );
    assert_eq!(enqueued(&services), Some(("general".into(), 0)));

    let complaint = choose('3');
    assert_eq!(
        writes(&complaint),
        vec![WorkOrderWrite::Category(Category::Complaint)]
    );
    let (queue, complaint_priority) = enqueued(&complaint).unwrap();
    assert_eq!(queue, "general");
    assert!(
        complaint_priority > enqueued(&consultation).unwrap().1,
        "complaints go ahead of consultations"
    );

    let about_hotline = choose('4');
    assert_eq!(
        writes(&about_hotline),
        vec![
            WorkOrderWrite::Category(Category::Complaint),
            WorkOrderWrite::HotlineComplaint
        ]
    );
    assert_eq!(
        enqueued(&about_hotline),
        Some(("complaints".into(), 5)),
        "R15"
    );
}

#[test]
fn a_caller_who_speaks_but_presses_nothing_reaches_the_default_queue() {
    let config = Config::load(&repo().join("config/hotline.toml")).expect("shipped config");
    let (mut call, _) = shipped_call();
    call.step(Event::VoiceStarted);
    call.step(Event::VoiceEnded);
    assert!(call.prompt_ends().is_empty());
    let (waited, actions) = call.wait_for_deadline();
    assert_eq!(waited, Duration::from_secs(4));
    assert_eq!(
        enqueued(&actions),
        Some((config.acd.default_queue.clone(), 0)),
        "the README's first command keeps working: no key, default queue"
    );
    assert!(writes(&actions).is_empty(), "no category guessed");
}

#[test]
fn wrong_keys_get_the_invalid_prompt_and_the_menu_again_then_the_default_queue() {
    let (mut call, _) = shipped_call();
    let expected_retry = play(&["invalid-input.wav", "greeting.wav", "menu.wav"]);
    let first = call.key('7');
    assert_eq!(first[0], Action::Stop);
    assert_eq!(plays(&first), vec![expected_retry.clone()]);
    call.prompt_ends();
    let second = call.key('#');
    assert_eq!(plays(&second), vec![expected_retry]);
    // A stale "finished" for the first retry's prompt is ignored: no timer starts.
    call.step(Event::PromptFinished(PlayId(0)));
    assert_eq!(call.ivr.poll_timeout(), None);
    let third = call.key('9');
    assert_eq!(enqueued(&third), Some(("general".into(), 0)));
}

#[test]
fn a_silent_caller_hears_the_prompt_three_times_then_goodbye_and_category_silent_r27() {
    let (mut call, _) = shipped_call();
    call.prompt_ends();
    let mut heard = Vec::new();
    let mut waits = Vec::new();
    let mut all = Vec::new();
    while !call.ivr.is_finished() {
        let (waited, actions) = call.wait_for_deadline();
        waits.push(waited);
        heard.extend(plays(&actions));
        all.extend(actions.clone());
        let after = call.prompt_ends();
        all.extend(after.clone());
    }
    assert_eq!(
        heard,
        vec![
            play(&["no-input.wav"]),
            play(&["no-input.wav"]),
            play(&["no-input.wav"]),
            play(&["no-input-goodbye.wav"]),
        ]
    );
    assert_eq!(
        waits,
        vec![
            Duration::from_secs(4),
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_secs(5)
        ]
    );
    assert_eq!(
        writes(&all),
        vec![WorkOrderWrite::Category(Category::Silent)]
    );
    assert_eq!(all.last(), Some(&Action::HangUp));
    assert!(enqueued(&call.log).is_none());
}

#[test]
fn a_caller_heard_during_the_no_answer_script_goes_to_the_queue() {
    let (mut call, _) = shipped_call();
    call.prompt_ends();
    call.wait_for_deadline(); // first no-input prompt
    let actions = call.step(Event::VoiceStarted);
    assert_eq!(actions[0], Action::Stop);
    assert_eq!(enqueued(&actions), Some(("general".into(), 0)));
    assert!(writes(&call.log).is_empty(), "not silent after all");
}

#[test]
fn after_the_agent_leaves_the_caller_rates_and_the_rating_is_stored_r8_r24() {
    let (mut call, _) = shipped_call();
    call.key('1');
    let joined = call.step(Event::AgentJoined {
        agent: "1003".into(),
    });
    assert_eq!(joined, vec![Action::Stop]);
    assert_eq!(
        call.ivr.poll_timeout(),
        None,
        "no announcements once connected"
    );
    assert!(
        call.key('1').is_empty(),
        "keys during the conversation are the agent's business"
    );

    let left = call.step(Event::AgentLeft);
    assert_eq!(
        plays(&left),
        vec![play(&[
            "closing.wav",
            "agent-number-prefix.wav",
            "digit-1.wav",
            "digit-0.wav",
            "digit-0.wav",
            "digit-3.wav",
            "survey-invitation.wav",
            "survey-rate.wav",
        ])]
    );
    let rated = call.key('4');
    assert_eq!(
        writes(&rated),
        vec![WorkOrderWrite::Rating {
            score: 4,
            min: 1,
            max: 5,
            agent: Some("1003".into())
        }]
    );
    assert_eq!(plays(&rated), vec![play(&["survey-thanks.wav"])]);
    assert_eq!(call.prompt_ends(), vec![Action::HangUp]);
    assert!(call.ivr.is_finished());
}

#[test]
fn a_survey_with_a_wrong_key_then_no_key_stores_nothing_and_hangs_up() {
    let (mut call, _) = shipped_call();
    call.key('3');
    call.step(Event::AgentJoined {
        agent: "1001".into(),
    });
    call.step(Event::AgentLeft);
    call.prompt_ends();
    let wrong = call.key('8');
    assert_eq!(plays(&wrong)[0][0], "invalid-input.wav");
    call.prompt_ends();
    let (waited, actions) = call.wait_for_deadline();
    assert_eq!(waited, Duration::from_secs(8));
    assert_eq!(actions, vec![Action::HangUp]);
    assert!(
        !writes(&call.log)
            .iter()
            .any(|w| matches!(w, WorkOrderWrite::Rating { .. }))
    );
}

#[test]
fn a_waiting_caller_hears_the_position_every_20_s_and_can_ask_for_a_callback() {
    let (mut call, _) = shipped_call();
    call.key('1');
    for _ in 0..2 {
        let (waited, actions) = call.wait_for_deadline();
        assert_eq!(waited, Duration::from_secs(20));
        assert!(matches!(
            &actions[..],
            [Action::AnnouncePosition { queue, then_loop: Some(hold), .. }]
                if queue == "general" && hold == "hold-music.wav"
        ));
    }
    let asked = call.key('1');
    assert_eq!(asked[0], Action::LeaveQueue);
    assert_eq!(
        writes(&asked),
        vec![WorkOrderWrite::CallbackRequested {
            queue: Some("general".into())
        }]
    );
    assert_eq!(plays(&asked), vec![play(&["callback-accepted.wav"])]);
    assert_eq!(call.prompt_ends(), vec![Action::HangUp]);
}

#[test]
fn an_acd_overflow_promises_a_callback_r3() {
    let (mut call, _) = shipped_call();
    call.key('2');
    let actions = call.step(Event::QueueOverflowed);
    assert_eq!(
        writes(&actions),
        vec![WorkOrderWrite::CallbackRequested { queue: None }]
    );
    assert!(
        !actions.contains(&Action::LeaveQueue),
        "the ACD already let go"
    );
    assert_eq!(call.prompt_ends(), vec![Action::HangUp]);
}

#[test]
fn the_nuisance_script_warns_hangs_up_and_sets_nuisance() {
    let (mut call, _) = shipped_call();
    call.key('1');
    call.step(Event::AgentJoined {
        agent: "1002".into(),
    });
    let actions = call.agent_script(AgentScript::Nuisance).unwrap();
    assert_eq!(actions[0], Action::Stop);
    assert_eq!(
        writes(&actions),
        vec![WorkOrderWrite::Category(Category::Nuisance)]
    );
    assert_eq!(plays(&actions), vec![play(&["nuisance-warning.wav"])]);
    assert_eq!(call.prompt_ends(), vec![Action::HangUp]);
    assert!(matches!(
        call.agent_script(AgentScript::Nuisance),
        Err(IvrError::Finished)
    ));
}

#[test]
fn the_out_of_scope_closing_sets_the_agents_category_and_is_never_a_refusal_r2_r3() {
    let (mut call, _) = shipped_call();
    call.key('1');
    call.step(Event::AgentJoined {
        agent: "1002".into(),
    });
    assert!(matches!(
        call.agent_script(AgentScript::OutOfScope(Category::Consultation)),
        Err(IvrError::NotOutOfScope(Category::Consultation))
    ));
    let actions = call
        .agent_script(AgentScript::OutOfScope(Category::LegalProcess))
        .unwrap();
    assert_eq!(
        writes(&actions),
        vec![WorkOrderWrite::Category(Category::LegalProcess)]
    );
    assert_eq!(plays(&actions), vec![play(&["out-of-scope.wav"])]);
    assert_eq!(call.prompt_ends(), vec![Action::HangUp]);
}

#[test]
fn an_agent_can_start_the_no_answer_script_and_line_noise_does_not_undo_it_r27() {
    let (mut call, _) = shipped_call();
    call.key('1');
    call.step(Event::AgentJoined {
        agent: "1001".into(),
    });
    let actions = call.agent_script(AgentScript::NoAnswer).unwrap();
    assert_eq!(plays(&actions), vec![play(&["no-input.wav"])]);
    assert!(call.step(Event::VoiceStarted).is_empty());
    call.prompt_ends();
    let mut prompts = 1;
    while !call.ivr.is_finished() {
        let (_, actions) = call.wait_for_deadline();
        prompts += plays(&actions).len();
        call.prompt_ends();
    }
    assert_eq!(prompts, 4, "three repeats and the goodbye");
    assert_eq!(
        writes(&call.log).last(),
        Some(&WorkOrderWrite::Category(Category::Silent)),
        "the script's category replaces the menu's"
    );
    assert_eq!(call.log.last(), Some(&Action::HangUp));
}

#[test]
fn a_reload_leaves_calls_in_progress_on_their_version_r4() {
    let mut slot = DialplanSlot::new(shipped_plan());
    let (mut old_call, _) = start(slot.current());
    assert_eq!(old_call.ivr.plan_version(), 1);

    // Version 2 sends complaints to the supervisors' queue at priority 7.
    let text = std::fs::read_to_string(repo().join("dialplans/8890.toml")).unwrap();
    let edited = text.replacen(
        "name = \"complaint-queue\"\nkind = \"queue\"\nqueue = \"general\"\npriority = 5",
        "name = \"complaint-queue\"\nkind = \"queue\"\nqueue = \"complaints\"\npriority = 7",
        1,
    );
    assert_ne!(edited, text, "the edit applies");
    let v2 = compile("8890.toml", &edited, &shipped_queues(), |f| {
        repo().join("dialplans/prompts").join(f).is_file()
    })
    .expect("v2 compiles");
    assert_eq!(slot.replace(v2), 2);

    let (mut new_call, _) = start(slot.current());
    assert_eq!(new_call.ivr.plan_version(), 2);
    assert_eq!(enqueued(&old_call.key('3')), Some(("general".into(), 5)));
    assert_eq!(enqueued(&new_call.key('3')), Some(("complaints".into(), 7)));
}

// ----- node kinds the shipped plan does not use ------------------------------------------

fn plan(text: &str) -> Arc<Dialplan> {
    Arc::new(
        compile("kinds.toml", text, &["general".to_owned()], |_| true)
            .unwrap_or_else(|e| panic!("{e:#?}")),
    )
}

const KINDS: &str = r##"start = "intro"

[[nodes]]
name = "intro"
kind = "play"
prompts = ["intro.wav"]
next = "account"

[[nodes]]
name = "account"
kind = "collect"
prompts = ["enter-account.wav"]
max_digits = 6
terminator = "#"
timeout_seconds = 3
store_as = "account"
next = "choose"
on_timeout = "choose"

[[nodes]]
name = "choose"
kind = "menu"
prompts = ["choose.wav"]
choices = [
  { digit = "1", next = "urgent" },
  { digit = "0", next = "supervisor" },
]
timeout_seconds = 2
timeout_retries = 1
on_timeout = "wait"

[[nodes]]
name = "urgent"
kind = "set"
category = "help"
urgent = true
next = "wait"

[[nodes]]
name = "wait"
kind = "queue"
queue = "general"
priority = 9
hold_music = "hold.wav"
max_wait_seconds = 60
overflow = "supervisor"

[[nodes]]
name = "supervisor"
kind = "transfer"
prompts = ["transferring.wav"]
uri = "sip:supervisor@10.0.0.5"
on_failure = "sorry"

[[nodes]]
name = "sorry"
kind = "hangup"
prompts = ["sorry.wav"]
"##;

#[test]
fn play_then_collect_digits_with_terminator() {
    let (mut call, actions) = start(plan(KINDS));
    assert_eq!(plays(&actions), vec![play(&["intro.wav"])]);
    assert!(call.key('5').is_empty(), "a play node takes no keys");
    let collect = call.prompt_ends();
    assert_eq!(plays(&collect), vec![play(&["enter-account.wav"])]);
    call.key('4');
    call.key('2');
    let done = call.key('#');
    assert_eq!(
        writes(&done),
        vec![WorkOrderWrite::Digits {
            name: "account".into(),
            digits: "42".into()
        }]
    );
    assert_eq!(call.ivr.current_node(), Some("choose"));
}

#[test]
fn collect_ends_at_max_digits_or_on_the_inter_digit_timeout() {
    let (mut call, _) = start(plan(KINDS));
    call.prompt_ends();
    call.prompt_ends();
    let mut last = Vec::new();
    for key in "123456".chars() {
        last = call.key(key);
    }
    assert_eq!(
        writes(&last),
        vec![WorkOrderWrite::Digits {
            name: "account".into(),
            digits: "123456".into()
        }]
    );

    let (mut call, _) = start(plan(KINDS));
    call.prompt_ends();
    call.prompt_ends();
    call.key('7');
    let (waited, actions) = call.wait_for_deadline();
    assert_eq!(waited, Duration::from_secs(3));
    assert_eq!(
        writes(&actions),
        vec![WorkOrderWrite::Digits {
            name: "account".into(),
            digits: "7".into()
        }]
    );

    // Nothing at all: on_timeout, nothing written.
    let (mut call, _) = start(plan(KINDS));
    call.prompt_ends();
    call.prompt_ends();
    let (_, actions) = call.wait_for_deadline();
    assert!(writes(&actions).is_empty());
    assert_eq!(call.ivr.current_node(), Some("choose"));
}

#[test]
fn menu_timeout_retries_then_on_timeout() {
    let (mut call, _) = start(plan(KINDS));
    call.prompt_ends();
    call.prompt_ends();
    call.wait_for_deadline(); // collect: nothing
    call.key('9'); // heard: the menu's silence branch does not apply (there is none anyway)
    call.prompt_ends();
    let (waited, retry) = call.wait_for_deadline();
    assert_eq!(waited, Duration::from_secs(2));
    assert_eq!(plays(&retry), vec![play(&["choose.wav"])]);
    call.prompt_ends();
    let (_, actions) = call.wait_for_deadline();
    assert_eq!(enqueued(&actions), Some(("general".into(), 9)));
}

#[test]
fn set_urgent_queue_max_wait_overflows_to_a_transfer_that_can_fail_r11() {
    let (mut call, _) = start(plan(KINDS));
    call.prompt_ends();
    call.key('#');
    let urgent = call.key('1');
    assert_eq!(
        writes(&urgent),
        vec![
            WorkOrderWrite::Category(Category::Help),
            WorkOrderWrite::Urgent
        ]
    );
    assert_eq!(enqueued(&urgent), Some(("general".into(), 9)));
    let (waited, overflow) = call.wait_for_deadline();
    assert_eq!(waited, Duration::from_secs(60));
    assert_eq!(overflow[0], Action::LeaveQueue);
    assert_eq!(plays(&overflow), vec![play(&["transferring.wav"])]);
    assert_eq!(
        call.prompt_ends(),
        vec![Action::Transfer {
            uri: "sip:supervisor@10.0.0.5".into()
        }]
    );
    let failed = call.step(Event::TransferFailed);
    assert_eq!(plays(&failed), vec![play(&["sorry.wav"])]);
    assert_eq!(call.prompt_ends(), vec![Action::HangUp]);
}

#[test]
fn a_transfer_chosen_from_the_menu_r11() {
    let (mut call, _) = start(plan(KINDS));
    call.prompt_ends();
    call.key('#');
    call.key('0');
    assert_eq!(call.ivr.current_node(), Some("supervisor"));
    assert_eq!(
        call.prompt_ends(),
        vec![Action::Transfer {
            uri: "sip:supervisor@10.0.0.5".into()
        }]
    );
}

#[test]
fn a_plan_without_scripts_refuses_agent_scripts() {
    let (mut call, _) = start(plan(KINDS));
    assert!(matches!(
        call.agent_script(AgentScript::Nuisance),
        Err(IvrError::NoSuchScript("nuisance"))
    ));
}

#[test]
fn a_reload_with_a_bad_file_keeps_the_running_version_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("8890.toml");
    let text = std::fs::read_to_string(repo().join("dialplans/8890.toml")).unwrap();
    std::fs::write(&path, &text).unwrap();
    let prompts = repo().join("dialplans/prompts");

    let mut slot = DialplanSlot::new(shipped_plan());
    assert_eq!(slot.reload(&path, &prompts, &shipped_queues()).unwrap(), 2);

    std::fs::write(
        &path,
        text.replace("survey-thanks.wav", "survey-thank-you.wav"),
    )
    .unwrap();
    let err = slot
        .reload(&path, &prompts, &shipped_queues())
        .expect_err("a missing prompt refuses the reload");
    let message = err.to_string();
    assert!(
        message.contains(&format!("{}:", path.display()))
            && message.contains("\"survey-thank-you.wav\" does not exist"),
        "{message}"
    );
    assert_eq!(slot.current().version, 2, "the old plan stays");
}

// ----- any order of events ---------------------------------------------------------------

/// What the switch might report, in any order (the test sends only what the switch
/// could: an agent joins only a queued call, an overflow only a waiting one).
#[derive(Clone, Debug)]
enum Input {
    Key(char),
    Finished,
    StaleFinished,
    Voice,
    Quiet,
    Deadline,
    AgentJoins,
    AgentLeaves,
    Overflow,
    TransferFails,
    Script(u8),
}

fn input() -> impl proptest::strategy::Strategy<Value = Input> {
    use proptest::prelude::*;
    prop_oneof![
        4 => proptest::sample::select(vec!['0', '1', '2', '3', '4', '5', '7', '9', '#', '*'])
            .prop_map(Input::Key),
        4 => Just(Input::Finished),
        1 => Just(Input::StaleFinished),
        2 => Just(Input::Voice),
        1 => Just(Input::Quiet),
        4 => Just(Input::Deadline),
        2 => Just(Input::AgentJoins),
        2 => Just(Input::AgentLeaves),
        1 => Just(Input::Overflow),
        1 => Just(Input::TransferFails),
        1 => (0u8..3).prop_map(Input::Script),
    ]
}

proptest::proptest! {
    /// Whatever happens, the IVR never panics, keeps the call in at most one queue,
    /// never leaves a deadline behind in the past, hands out fresh play ids, and is
    /// silent once it has hung up.
    #[test]
    fn any_event_order_keeps_the_invariants(inputs in proptest::collection::vec(input(), 0..80)) {
        static PLAN: std::sync::OnceLock<Arc<Dialplan>> = std::sync::OnceLock::new();
        let plan = PLAN.get_or_init(|| Arc::new(shipped_plan()));
        let (mut call, first) = start(Arc::clone(plan));
        let mut in_queue = enqueued(&first).is_some();
        let mut connected = false;
        let mut hung_up = false;
        let mut play_ids = std::collections::HashSet::new();
        let mut check = |actions: &[Action], in_queue: &mut bool, connected: &mut bool, hung_up: &mut bool| {
            for a in actions {
                assert!(!*hung_up, "{a:?} after HangUp");
                match a {
                    Action::Enqueue { .. } => {
                        assert!(!*in_queue, "enqueued twice");
                        *in_queue = true;
                    }
                    Action::LeaveQueue => {
                        assert!(*in_queue && !*connected, "left a queue it was not waiting in");
                        *in_queue = false;
                    }
                    Action::HangUp => *hung_up = true,
                    Action::Play { id, .. } | Action::AnnouncePosition { id, .. } => {
                        assert!(play_ids.insert(*id), "play id {id:?} reused");
                    }
                    _ => {}
                }
            }
        };
        check(&first, &mut in_queue, &mut connected, &mut hung_up);
        for input in inputs {
            let actions = match input {
                Input::Key(k) => call.key(k),
                Input::Finished => match call.last_play {
                    Some(id) => call.step(Event::PromptFinished(id)),
                    None => vec![],
                },
                Input::StaleFinished => call.step(Event::PromptFinished(PlayId(u64::MAX))),
                Input::Voice => call.step(Event::VoiceStarted),
                Input::Quiet => call.step(Event::VoiceEnded),
                Input::Deadline => match call.ivr.poll_timeout() {
                    Some(_) => call.wait_for_deadline().1,
                    None => vec![],
                },
                Input::AgentJoins if in_queue && !connected => {
                    connected = true;
                    call.step(Event::AgentJoined { agent: "1001".into() })
                }
                Input::AgentLeaves if connected => {
                    connected = false;
                    in_queue = false;
                    call.step(Event::AgentLeft)
                }
                Input::Overflow if in_queue && !connected => {
                    in_queue = false;
                    call.step(Event::QueueOverflowed)
                }
                Input::TransferFails => call.step(Event::TransferFailed),
                Input::Script(n) => {
                    let script = [
                        AgentScript::NoAnswer,
                        AgentScript::Nuisance,
                        AgentScript::OutOfScope(Category::OutOfProvince),
                    ][usize::from(n)];
                    if connected {
                        // The switch takes the caller back from the agent.
                        connected = false;
                        in_queue = false;
                    }
                    call.agent_script(script).unwrap_or_default()
                }
                _ => vec![],
            };
            check(&actions, &mut in_queue, &mut connected, &mut hung_up);
            if let Some(at) = call.ivr.poll_timeout() {
                assert!(at > call.now, "a deadline left in the past");
            }
            assert_eq!(call.ivr.is_finished(), hung_up);
        }
    }
}

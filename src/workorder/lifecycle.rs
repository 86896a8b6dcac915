//! The work order lifecycle (R21): which status changes are allowed, and the closing
//! rules. Pure: a decision over an order as stored, no I/O.
//!
//! `accepted` → (`transferred`) → (`follow_up`) → `closed`, where the steps in
//! brackets may be skipped:
//! - `transferred` needs somewhere it went: a handling unit (R14) or a referred
//!   enterprise (a service request). It may come from `accepted`, or again from
//!   `follow_up` when the matter has to go to another unit.
//! - `follow_up` comes from `accepted` or `transferred`.
//! - `closed` is final, and needs a category. Then:
//!   - a service request (one with a referred enterprise) closes only after the
//!     caller's evaluation of the enterprise (R21, R25);
//!   - any other in-scope matter closes once an answer is recorded;
//!   - straight from `accepted` ("on the spot") only a consultation answered at once,
//!     or an out-of-scope, silent or nuisance call (R2, R3: they get the closing
//!     script and are promised no result). A complaint, report, request for help or
//!     suggestion goes through transfer or follow-up first.
//! - Nothing goes back to `accepted`, and a status does not change to itself.

use std::fmt;

use super::matter::WorkOrderFile;
use super::model::{Category, Status};

/// Why a status change was refused. Its text is the reason given to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionRefused {
    /// The order already has this status.
    Unchanged(Status),
    /// A closed order is final.
    AlreadyClosed,
    /// Back to `accepted`.
    BackToAccepted { from: Status },
    /// `transferred` without a handling unit or referred enterprise.
    NowhereToTransfer,
    /// Closing without a category.
    NoCategory,
    /// A service request closes only after the enterprise evaluation.
    EnterpriseNotEvaluated,
    /// Closing an in-scope matter without a recorded answer.
    NoAnswer,
    /// Closing from `accepted` a matter that must be transferred or followed up.
    NotClosableOnTheSpot(Category),
}

impl fmt::Display for TransitionRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionRefused::Unchanged(status) => write!(f, "the order is already {status}"),
            TransitionRefused::AlreadyClosed => {
                f.write_str("the order is closed; a closed order is final (R21)")
            }
            TransitionRefused::BackToAccepted { from } => {
                write!(f, "an order cannot go back from {from} to accepted (R21)")
            }
            TransitionRefused::NowhereToTransfer => f.write_str(
                "cannot transfer: set a handling unit or refer an enterprise first (R14)",
            ),
            TransitionRefused::NoCategory => {
                f.write_str("cannot close: the order has no category (R1, R2)")
            }
            TransitionRefused::EnterpriseNotEvaluated => f.write_str(
                "cannot close: a service request closes only after the caller's evaluation \
                 of the enterprise (R21, R25)",
            ),
            TransitionRefused::NoAnswer => {
                f.write_str("cannot close: no answer is recorded on the order (R13, R21)")
            }
            TransitionRefused::NotClosableOnTheSpot(category) => write!(
                f,
                "cannot close a {category} on the spot: only a consultation answered at once \
                 (or an out-of-scope call) closes from accepted; transfer it or follow it up \
                 first (R21)"
            ),
        }
    }
}

impl std::error::Error for TransitionRefused {}

/// Whether `file` (as stored) may move to `to`.
pub fn check_transition(file: &WorkOrderFile, to: Status) -> Result<(), TransitionRefused> {
    let from = file.order.status;
    if from == Status::Closed {
        return Err(TransitionRefused::AlreadyClosed);
    }
    if from == to {
        return Err(TransitionRefused::Unchanged(from));
    }
    match to {
        Status::Accepted => Err(TransitionRefused::BackToAccepted { from }),
        Status::Transferred => {
            let matter = &file.matter;
            if matter.handling_unit.is_none() && matter.referral.is_none() {
                Err(TransitionRefused::NowhereToTransfer)
            } else {
                Ok(())
            }
        }
        Status::FollowUp => Ok(()),
        Status::Closed => check_closing(file),
    }
}

fn check_closing(file: &WorkOrderFile) -> Result<(), TransitionRefused> {
    let category = file.order.category.ok_or(TransitionRefused::NoCategory)?;
    if file
        .matter
        .referral
        .as_ref()
        .is_some_and(|r| r.evaluation.is_none())
    {
        return Err(TransitionRefused::EnterpriseNotEvaluated);
    }
    if !category.is_in_scope() {
        return Ok(());
    }
    let answered = file
        .matter
        .answer
        .as_deref()
        .is_some_and(|a| !a.trim().is_empty());
    if !answered {
        return Err(TransitionRefused::NoAnswer);
    }
    if file.order.status == Status::Accepted && category != Category::Consultation {
        return Err(TransitionRefused::NotClosableOnTheSpot(category));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workorder::fixtures::{base_time, inbound_order};
    use crate::workorder::matter::{EnterpriseEvaluation, EnterpriseReferral, Matter};
    use crate::workorder::model::Satisfaction;

    fn file(status: Status, category: Option<Category>) -> WorkOrderFile {
        let mut order = inbound_order(1, base_time());
        order.status = status;
        order.category = category;
        WorkOrderFile {
            order,
            matter: Matter::default(),
            calls: Vec::new(),
            follow_ups: Vec::new(),
            forbidden_hits: Vec::new(),
        }
    }

    fn refer(file: &mut WorkOrderFile, evaluated: bool) {
        file.matter.referral = Some(EnterpriseReferral {
            enterprise: "某某家政服务有限公司".into(),
            referred_at: base_time(),
            evaluation: evaluated.then_some(EnterpriseEvaluation {
                attitude: Satisfaction::Satisfied,
                efficiency: Satisfaction::BasicallySatisfied,
                quality: Satisfaction::Satisfied,
            }),
        });
    }

    #[test]
    fn every_transition_out_of_closed_is_refused_r21() {
        for to in Status::ALL {
            let f = file(Status::Closed, Some(Category::Consultation));
            assert_eq!(
                check_transition(&f, *to),
                Err(TransitionRefused::AlreadyClosed)
            );
        }
    }

    #[test]
    fn a_status_never_changes_to_itself_r21() {
        for status in [Status::Accepted, Status::Transferred, Status::FollowUp] {
            let f = file(status, Some(Category::Consultation));
            assert_eq!(
                check_transition(&f, status),
                Err(TransitionRefused::Unchanged(status))
            );
        }
    }

    #[test]
    fn nothing_goes_back_to_accepted_r21() {
        for from in [Status::Transferred, Status::FollowUp] {
            let f = file(from, Some(Category::Complaint));
            assert_eq!(
                check_transition(&f, Status::Accepted),
                Err(TransitionRefused::BackToAccepted { from })
            );
        }
    }

    #[test]
    fn transfer_needs_a_handling_unit_or_an_enterprise_r14() {
        for from in [Status::Accepted, Status::FollowUp] {
            let mut f = file(from, Some(Category::Complaint));
            assert_eq!(
                check_transition(&f, Status::Transferred),
                Err(TransitionRefused::NowhereToTransfer)
            );
            f.matter.handling_unit = Some("市人力资源和社会保障局".into());
            assert_eq!(check_transition(&f, Status::Transferred), Ok(()));
            let mut g = file(from, Some(Category::Help));
            refer(&mut g, false);
            assert_eq!(check_transition(&g, Status::Transferred), Ok(()));
        }
    }

    #[test]
    fn follow_up_comes_from_accepted_or_transferred() {
        for from in [Status::Accepted, Status::Transferred] {
            let f = file(from, None);
            assert_eq!(check_transition(&f, Status::FollowUp), Ok(()));
        }
    }

    #[test]
    fn closing_needs_a_category() {
        let f = file(Status::FollowUp, None);
        assert_eq!(
            check_transition(&f, Status::Closed),
            Err(TransitionRefused::NoCategory)
        );
    }

    #[test]
    fn a_consultation_answered_at_once_closes_on_the_spot_r21() {
        let mut f = file(Status::Accepted, Some(Category::Consultation));
        assert_eq!(
            check_transition(&f, Status::Closed),
            Err(TransitionRefused::NoAnswer)
        );
        f.matter.answer = Some("   ".into());
        assert_eq!(
            check_transition(&f, Status::Closed),
            Err(TransitionRefused::NoAnswer)
        );
        f.matter.answer = Some("社保卡补办请携带身份证到就近社保经办网点办理。".into());
        assert_eq!(check_transition(&f, Status::Closed), Ok(()));
    }

    #[test]
    fn other_in_scope_matters_do_not_close_on_the_spot_r21() {
        for category in [
            Category::Complaint,
            Category::Report,
            Category::Help,
            Category::Suggestion,
        ] {
            let mut f = file(Status::Accepted, Some(category));
            f.matter.answer = Some("已记录".into());
            assert_eq!(
                check_transition(&f, Status::Closed),
                Err(TransitionRefused::NotClosableOnTheSpot(category))
            );
            f.order.status = Status::FollowUp;
            assert_eq!(check_transition(&f, Status::Closed), Ok(()));
        }
    }

    #[test]
    fn out_of_scope_calls_close_on_the_spot_without_an_answer_r2_r3() {
        for category in Category::ALL.iter().filter(|c| !c.is_in_scope()) {
            let f = file(Status::Accepted, Some(*category));
            assert_eq!(check_transition(&f, Status::Closed), Ok(()), "{category}");
        }
    }

    #[test]
    fn a_service_request_closes_only_after_the_enterprise_evaluation_r21_r25() {
        for from in [Status::Transferred, Status::FollowUp] {
            let mut f = file(from, Some(Category::Help));
            f.matter.answer = Some("已联系开锁公司上门".into());
            refer(&mut f, false);
            assert_eq!(
                check_transition(&f, Status::Closed),
                Err(TransitionRefused::EnterpriseNotEvaluated)
            );
            refer(&mut f, true);
            assert_eq!(check_transition(&f, Status::Closed), Ok(()));
        }
    }

    /// Every (from, to) pair on an order that meets every precondition (category,
    /// answer, handling unit, evaluated referral): exactly the lifecycle's arrows pass.
    #[test]
    fn the_whole_transition_matrix_r21() {
        use Status::*;
        let allowed = [
            (Accepted, Transferred),
            (Accepted, FollowUp),
            (Accepted, Closed),
            (Transferred, FollowUp),
            (Transferred, Closed),
            (FollowUp, Transferred),
            (FollowUp, Closed),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                let mut f = file(*from, Some(Category::Consultation));
                f.matter.answer = Some("已答复".into());
                f.matter.handling_unit = Some("市民政局".into());
                refer(&mut f, true);
                let result = check_transition(&f, *to);
                assert_eq!(
                    result.is_ok(),
                    allowed.contains(&(*from, *to)),
                    "{from} -> {to}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn refusals_give_their_reason() {
        let text = TransitionRefused::EnterpriseNotEvaluated.to_string();
        assert!(text.contains("evaluation of the enterprise"), "{text}");
        let text = TransitionRefused::NotClosableOnTheSpot(Category::Complaint).to_string();
        assert!(text.contains("complaint"), "{text}");
    }
}

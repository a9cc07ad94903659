//! What a pull request event does to its preview, decided from the event, the app's preview
//! settings and what Rivetr last heard of the PR: nothing here touches the database or an
//! engine, so every rule is a unit test.

use crate::db::apps::PreviewSettings;
use crate::db::pull_requests::PullRequestRow;

/// A pull request event, as every forge's payload says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// GitHub's and Gitea's `number`, GitLab's `iid` (not its global `id`).
    pub number: u64,
    pub action: PrAction,
    /// The forge's name for the action (`synchronize`, `update`, ...), for messages.
    pub action_name: String,
    /// The head branch's name.
    pub head_ref: String,
    /// The head commit (lower-case hex).
    pub head_sha: String,
    /// The repository the head branch lives in, `owner/name`.
    pub head_repo: Option<String>,
    /// The repository the PR is opened against, `owner/name`.
    pub base_repo: Option<String>,
    /// The head branch lives in another repository (a fork), or the forge no longer knows
    /// which (GitHub's `head.repo: null` for a deleted fork).
    pub from_fork: bool,
    pub draft: bool,
    /// When the forge last changed the PR (seconds since the epoch), to tell a late delivery
    /// from a new one; `None` when the payload has no readable time.
    pub updated_at: Option<i64>,
}

/// What a pull request event asks of its preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrAction {
    /// Opened: deploy its head.
    Opened,
    /// Reopened after a close: deploy its head again.
    Reopened,
    /// New commits on the head branch: redeploy.
    Updated,
    /// Marked ready for review (no longer a draft).
    ReadyForReview,
    /// Turned back into a draft.
    ConvertedToDraft,
    /// Closed, merged or not.
    Closed,
    /// Anything that does not change the code (labels, title, reviews, a GitLab `update`
    /// without `oldrev`).
    Other,
}

/// What to do about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Deploy the PR's head as its preview (creating the preview if it has none).
    Deploy,
    /// Remove the preview, if there is one, and everything of it.
    Remove { why: String },
    /// Nothing to do, and why.
    Ignore(String),
    /// The PR should have a preview by its action, but it may not: why, for the forge's
    /// delivery log and `GET /api/apps/{app}/previews`. An existing preview is removed.
    Refuse(String),
}

/// What the app holds now, as far as the plan needs it.
#[derive(Debug, Clone, Default)]
pub struct Current<'a> {
    /// What was last heard of this PR.
    pub known: Option<&'a PullRequestRow>,
    /// This PR has a preview.
    pub has_preview: bool,
    /// The PR numbers of the app's previews.
    pub previews: Vec<u64>,
}

/// Decides what `pr` does to the preview of app `app`, and whether the PR is open after it
/// (what to record; `None` for a late delivery, which changes nothing).
pub fn plan(
    app: &str,
    settings: &PreviewSettings,
    pr: &PullRequest,
    now: &Current<'_>,
) -> (Plan, Option<bool>) {
    let n = pr.number;
    if let Some(known) = now.known
        && let (Some(then), Some(this)) = (known.forge_updated_at, pr.updated_at)
        && this < then
    {
        return (
            Plan::Ignore(format!(
                "a late delivery: PR #{n} changed after this `{}` event; nothing done",
                pr.action_name
            )),
            None,
        );
    }
    let was_open = now.known.is_none_or(|k| k.open);
    if pr.action == PrAction::Closed {
        let plan = if now.has_preview {
            Plan::Remove {
                why: format!("PR #{n} was closed"),
            }
        } else {
            Plan::Ignore(format!("PR #{n} was closed; it had no preview"))
        };
        return (plan, Some(false));
    }
    if !settings.enabled {
        let why = format!(
            "previews are off for app `{app}`; turn them on with PATCH /api/apps/{app} {{\"previews\": {{\"enabled\": true}}}}"
        );
        return (off_or_remove(now, why), Some(was_open));
    }
    let deploys = match pr.action {
        PrAction::Opened | PrAction::Reopened => true,
        PrAction::Updated | PrAction::ReadyForReview => {
            if !was_open {
                // A delivery that crossed the close (without times to order them by).
                return (
                    Plan::Ignore(format!(
                        "PR #{n} is closed; only a reopen brings its preview back"
                    )),
                    Some(false),
                );
            }
            true
        }
        PrAction::ConvertedToDraft => false,
        PrAction::Closed | PrAction::Other => {
            return (
                Plan::Ignore(format!(
                    "`{}` does not change PR #{n}'s code; its preview stays as it is",
                    pr.action_name
                )),
                Some(was_open),
            );
        }
    };
    if pr.from_fork && !settings.forks {
        let from = pr.head_repo.as_deref().unwrap_or("a deleted repository");
        let why = format!(
            "PR #{n} comes from a fork ({from}); previews of forks are off (previews.forks): they would run code from outside the repository with the app's environment"
        );
        return (Plan::Refuse(why), Some(true));
    }
    if pr.draft && !settings.drafts {
        let why = format!("PR #{n} is a draft; previews of drafts are off (previews.drafts)");
        return (off_or_remove(now, why), Some(true));
    }
    if !deploys {
        return (
            Plan::Ignore(format!(
                "PR #{n} became a draft; its preview stays (previews.drafts is on)"
            )),
            Some(true),
        );
    }
    if !now.has_preview && now.previews.len() >= settings.limit as usize {
        let list: Vec<String> = now.previews.iter().map(|p| format!("#{p}")).collect();
        let why = format!(
            "app `{app}` already has {} previews, its limit (previews.limit = {}): {}; close one of those PRs or raise the limit, then push to PR #{n} again",
            now.previews.len(),
            settings.limit,
            list.join(", ")
        );
        return (Plan::Refuse(why), Some(true));
    }
    (Plan::Deploy, Some(true))
}

/// Nothing to do, or, when the PR has a preview, removing it.
fn off_or_remove(now: &Current<'_>, why: String) -> Plan {
    if now.has_preview {
        Plan::Remove { why }
    } else {
        Plan::Ignore(why)
    }
}

/// The preview's host from the template: `{number}`, `{app}` and `{domain}` filled in.
pub fn preview_host(
    template: &str,
    app: &str,
    first_domain: Option<&str>,
    number: u64,
) -> Result<String, String> {
    if template.contains("{domain}") && first_domain.is_none() {
        return Err(format!(
            "app `{app}` has no domain for the preview's host (previews.domain_template is `{template}`); give the app a domain or a template without {{domain}}"
        ));
    }
    let host = template
        .replace("{number}", &number.to_string())
        .replace("{app}", app)
        .replace("{domain}", first_domain.unwrap_or_default());
    crate::host::validate_route_host(&host).map_err(|e| {
        format!("previews.domain_template `{template}` gives `{host}`, not a host name: {e}")
    })
}

/// The name of the preview app of PR `number`.
pub fn preview_name(app: &str, number: u64) -> String {
    format!("{app}-pr-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn pr(action: PrAction, at: Option<i64>) -> PullRequest {
        PullRequest {
            number: 7,
            action,
            action_name: format!("{action:?}").to_lowercase(),
            head_ref: "feature".to_owned(),
            head_sha: SHA.to_owned(),
            head_repo: Some("acme/web".to_owned()),
            base_repo: Some("acme/web".to_owned()),
            from_fork: false,
            draft: false,
            updated_at: at,
        }
    }

    fn on() -> PreviewSettings {
        PreviewSettings {
            enabled: true,
            ..PreviewSettings::default()
        }
    }

    fn row(open: bool, at: Option<i64>) -> PullRequestRow {
        PullRequestRow {
            app_id: 1,
            number: 7,
            open,
            head_ref: "feature".to_owned(),
            head_sha: SHA.to_owned(),
            forge_updated_at: at,
            refused: None,
            updated_at: String::new(),
        }
    }

    #[test]
    fn an_opened_pr_deploys_and_a_closed_one_removes_its_preview() {
        let none = Current::default();
        assert_eq!(
            plan("web", &on(), &pr(PrAction::Opened, None), &none),
            (Plan::Deploy, Some(true))
        );
        let known = row(true, None);
        let has = Current {
            known: Some(&known),
            has_preview: true,
            previews: vec![7],
        };
        assert_eq!(
            plan("web", &on(), &pr(PrAction::Updated, None), &has),
            (Plan::Deploy, Some(true))
        );
        assert!(matches!(
            plan("web", &on(), &pr(PrAction::Closed, None), &has),
            (Plan::Remove { .. }, Some(false))
        ));
    }

    #[test]
    fn previews_are_off_by_default() {
        let (p, open) = plan(
            "web",
            &PreviewSettings::default(),
            &pr(PrAction::Opened, None),
            &Current::default(),
        );
        assert!(matches!(p, Plan::Ignore(ref why) if why.contains("previews are off")));
        assert_eq!(open, Some(true));
    }

    #[test]
    fn a_synchronize_after_closed_changes_nothing_with_or_without_times() {
        // With times: the late event is older than the close.
        let closed = row(false, Some(200));
        let now = Current {
            known: Some(&closed),
            ..Current::default()
        };
        let (p, open) = plan("web", &on(), &pr(PrAction::Updated, Some(150)), &now);
        assert!(
            matches!(p, Plan::Ignore(ref why) if why.contains("late delivery")),
            "{p:?}"
        );
        assert_eq!(open, None);
        // Without times: a closed PR only comes back by a reopen.
        let closed = row(false, None);
        let now = Current {
            known: Some(&closed),
            ..Current::default()
        };
        let (p, open) = plan("web", &on(), &pr(PrAction::Updated, None), &now);
        assert!(
            matches!(p, Plan::Ignore(ref why) if why.contains("is closed")),
            "{p:?}"
        );
        assert_eq!(open, Some(false));
        assert_eq!(
            plan("web", &on(), &pr(PrAction::Reopened, None), &now),
            (Plan::Deploy, Some(true))
        );
    }

    #[test]
    fn an_opened_delivered_after_a_newer_synchronize_does_not_go_back() {
        let known = row(true, Some(300));
        let now = Current {
            known: Some(&known),
            has_preview: true,
            previews: vec![7],
        };
        let (p, open) = plan("web", &on(), &pr(PrAction::Opened, Some(100)), &now);
        assert!(matches!(p, Plan::Ignore(_)));
        assert_eq!(open, None);
    }

    #[test]
    fn forks_are_refused_unless_allowed() {
        let mut fork = pr(PrAction::Opened, None);
        fork.from_fork = true;
        fork.head_repo = Some("mallory/web".to_owned());
        let (p, _) = plan("web", &on(), &fork, &Current::default());
        assert!(
            matches!(p, Plan::Refuse(ref why) if why.contains("mallory/web") && why.contains("fork")),
            "{p:?}"
        );
        let allowed = PreviewSettings {
            forks: true,
            ..on()
        };
        assert_eq!(
            plan("web", &allowed, &fork, &Current::default()).0,
            Plan::Deploy
        );
    }

    #[test]
    fn drafts_follow_their_setting() {
        let mut draft = pr(PrAction::Opened, None);
        draft.draft = true;
        assert!(matches!(
            plan("web", &on(), &draft, &Current::default()).0,
            Plan::Ignore(ref why) if why.contains("draft")
        ));
        let drafts = PreviewSettings {
            drafts: true,
            ..on()
        };
        assert_eq!(
            plan("web", &drafts, &draft, &Current::default()).0,
            Plan::Deploy
        );
        // Back to draft: its preview goes while drafts are off.
        let known = row(true, None);
        let has = Current {
            known: Some(&known),
            has_preview: true,
            previews: vec![7],
        };
        let mut to_draft = pr(PrAction::ConvertedToDraft, None);
        to_draft.draft = true;
        assert!(matches!(
            plan("web", &on(), &to_draft, &has).0,
            Plan::Remove { .. }
        ));
        let mut ready = pr(PrAction::ReadyForReview, None);
        ready.draft = false;
        assert_eq!(plan("web", &on(), &ready, &has).0, Plan::Deploy);
    }

    #[test]
    fn past_the_limit_a_new_pr_is_refused_naming_the_previews() {
        let limited = PreviewSettings { limit: 2, ..on() };
        let full = Current {
            known: None,
            has_preview: false,
            previews: vec![3, 5],
        };
        let (p, _) = plan("web", &limited, &pr(PrAction::Opened, None), &full);
        assert!(
            matches!(p, Plan::Refuse(ref why) if why.contains("#3, #5") && why.contains("previews.limit = 2")),
            "{p:?}"
        );
        // One that has its preview is redeployed whatever the count.
        let known = row(true, None);
        let with_own = Current {
            known: Some(&known),
            has_preview: true,
            previews: vec![3, 7],
        };
        assert_eq!(
            plan("web", &limited, &pr(PrAction::Updated, None), &with_own).0,
            Plan::Deploy
        );
    }

    #[test]
    fn label_and_title_changes_leave_the_preview_alone() {
        let (p, _) = plan(
            "web",
            &on(),
            &pr(PrAction::Other, None),
            &Current::default(),
        );
        assert!(matches!(p, Plan::Ignore(_)));
    }

    #[test]
    fn the_host_comes_from_the_template() {
        assert_eq!(
            preview_host("pr-{number}.{domain}", "web", Some("web.example.com"), 12).unwrap(),
            "pr-12.web.example.com"
        );
        assert_eq!(
            preview_host("{app}-{number}.previews.example.com", "web", None, 3).unwrap(),
            "web-3.previews.example.com"
        );
        let err = preview_host("pr-{number}.{domain}", "web", None, 3).unwrap_err();
        assert!(err.contains("no domain"), "{err}");
        assert!(preview_host("pr {number}.{domain}", "web", Some("a.b"), 3).is_err());
    }
}

//! `SolarSystemFilter`: keeps (or drops) alerts associated with known
//! solar-system objects, optionally only some of them.
//!
//! Association is [`Candidate::solar_system`]: ZTF `ssnamenr` set (and not
//! the string `"null"`), Rubin `ssSource`/`ssObject` present or a non-zero
//! `diaSource.ssObjectId`. Target names match the association's name
//! ignoring case and spaces; a ZTF name `(97125)1999VG102` also matches its
//! number `97125` and its designation `1999 VG102`.

use crate::candidate::Candidate;
use crate::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use crate::processor::{CandidateProcessor, Response};

/// Keep or drop the associated alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolarSystemAction {
    /// Pass only associated alerts (with a listed target, if any).
    Include,
    /// Drop associated alerts (with a listed target, if any).
    Exclude,
}

/// The filter.
#[derive(Debug, Clone)]
pub struct SolarSystemFilter {
    action: SolarSystemAction,
    targets: Option<Vec<String>>,
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

impl SolarSystemFilter {
    /// A filter; `targets` restricts it to those objects.
    #[must_use]
    pub fn new(action: SolarSystemAction, targets: Option<Vec<String>>) -> Self {
        SolarSystemFilter {
            action,
            targets: targets.map(|t| t.iter().map(|s| normalize(s)).collect()),
        }
    }

    fn selected(&self, c: &Candidate) -> bool {
        let Some(assoc) = c.solar_system() else {
            return false;
        };
        let Some(targets) = &self.targets else {
            return true;
        };
        let Some(name) = assoc.name.as_deref() else {
            return false;
        };
        let name = normalize(name);
        let mut forms = vec![name.clone()];
        if let Some(rest) = name.strip_prefix('(') {
            if let Some((number, designation)) = rest.split_once(')') {
                forms.push(number.to_owned());
                if !designation.is_empty() {
                    forms.push(designation.to_owned());
                }
            }
        }
        targets.iter().any(|t| forms.contains(t))
    }
}

impl CandidateProcessor for SolarSystemFilter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        let selected = self.selected(candidate);
        Response::pass_if(match self.action {
            SolarSystemAction::Include => selected,
            SolarSystemAction::Exclude => !selected,
        })
    }
}

impl ProcessorSpec for SolarSystemFilter {
    fn build(
        &self,
        _ctx: &BuildContext,
        _path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        Ok(Box::new(self.clone()))
    }
}

/// Parameters: `action` (`include` | `exclude`, required), `targets`
/// (optional list of names or numbers).
///
/// # Errors
/// Missing or mistyped parameters.
pub fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let action = match p.choice("action", &["include", "exclude"], None)?.as_str() {
        "exclude" => SolarSystemAction::Exclude,
        _ => SolarSystemAction::Include,
    };
    let targets = p.optional_str_list("targets", "a solar-system object name or number")?;
    if targets.as_ref().is_some_and(Vec::is_empty) {
        return Err(p.error(
            "targets",
            "expected at least one target (or leave targets out)",
        ));
    }
    Ok(Box::new(SolarSystemFilter::new(action, targets)))
}

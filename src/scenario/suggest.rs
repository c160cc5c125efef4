//! "Did you mean": the closest known name to a misspelt one.

/// The candidate closest to `word`, if it is close enough to be a typo
/// (Jaro-Winkler ≥ 0.8, or the same letters in another case).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (c, strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase())))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// `; did you mean `x`?` when a candidate is close, else nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word_and_strangers_find_nothing() {
        let known = ["rollout", "podsReady", "deleted"];
        assert_eq!(closest("rolout", known), Some("rollout"));
        assert_eq!(closest("podsready", known), Some("podsReady"));
        assert_eq!(closest("banana", known), None);
        assert_eq!(did_you_mean("delted", known), "; did you mean `deleted`?");
    }
}

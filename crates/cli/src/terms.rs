//! The libraries' errors name their own settings and functions, in backticks (`val_split`,
//! `extract`), since a research script calling them never typed a flag. This is where the
//! command line turns those names into what its user types (`--val-split`, `imgclf
//! extract`), and adds the recipe that fixes a missing GPU library.

/// A library's name for a setting or function → the flag or command that sets or runs it.
const TERMS: &[(&str, &str)] = &[
    ("`replace`", "--replace"),
    ("`overwrite`", "--force"),
    ("`force`", "--force"),
    ("`val_split`", "--val-split"),
    ("`learning_rate`", "--lr"),
    ("`l2`", "--l2"),
    ("`c`", "--c"),
    ("`head`", "--head"),
    ("`solver`", "--solver"),
    ("`refit`", "--refit"),
    ("`optimizer`", "--optimizer"),
    ("`decay`", "--decay"),
    ("`momentum`", "--momentum"),
    ("`nesterov`", "--nesterov"),
    ("`dropout`", "--dropout"),
    ("`hidden`", "--hidden"),
    ("`patience`", "--patience"),
    ("`class_weight`", "--class-weight"),
    ("`epochs`", "--epochs"),
    ("`memory_budget`", "--memory-budget"),
    ("`batch_size`", "--batch"),
    ("`shards`", "--shards"),
    ("`from`", "--from"),
    ("`split`", "--split"),
    ("`wheel`", "--wheel"),
    ("`extract`", "`imgclf extract`"),
    ("`merge`", "`imgclf features merge`"),
    ("`ModelCache::add`", "`imgclf models add`"),
];

/// Words in a message that mean the GPU's libraries are not installed.
const GPU_SETUP: [&str; 2] = ["ORT_DYLIB_PATH", "CUDA_HOME"];

/// An error message as a command-line user should read it.
pub(crate) fn for_users(message: &str) -> String {
    let mut out = TERMS.iter().fold(message.to_string(), |m, (library, cli)| m.replace(library, cli));
    if GPU_SETUP.iter().any(|w| message.contains(w)) {
        out.push_str(" (`./just setup-gpu` installs both)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag the table names exists on some subcommand: a renamed flag fails here.
    #[test]
    fn every_flag_named_is_a_real_flag() {
        fn longs(command: &clap::Command, out: &mut Vec<String>) {
            out.extend(command.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")));
            command.get_subcommands().for_each(|s| longs(s, out));
        }
        let mut flags = Vec::new();
        longs(&crate::Cli::command(), &mut flags);
        for (_, cli) in TERMS.iter().filter(|(_, cli)| cli.starts_with("--")) {
            assert!(flags.iter().any(|f| f == cli), "{cli} is no flag of imgclf");
        }
    }

    #[test]
    fn library_names_become_flags_and_commands() {
        assert_eq!(
            for_users("`val_split` holds out part of train; `extract` again"),
            "--val-split holds out part of train; `imgclf extract` again"
        );
        assert!(for_users("set CUDA_HOME to a CUDA 13 installation").ends_with("(`./just setup-gpu` installs both)"));
        assert_eq!(for_users("split `train`: attribute `shard`"), "split `train`: attribute `shard`");
    }
}

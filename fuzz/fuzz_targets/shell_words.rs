//! Shell-word expansion as Dockerfile instructions do it (`$VAR`, `${VAR:-x}`, quotes,
//! escapes), with both escape characters.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env = vec!["A=1".to_owned(), "EMPTY=".to_owned(), "PATH=/bin".to_owned()];
    for escape in ['\\', '`'] {
        let lexer = berth_build::shell::Lexer::new(escape);
        let _ = lexer.process_word(text, &env);
        let _ = lexer.process_words(text, &env);
    }
});

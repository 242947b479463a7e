//! The repository's documents agree with the code that cites them.

use crate::common::repo;

/// Every `docs/design.md §n` a source file or document cites is a section of docs/design.md.
#[test]
fn cited_design_sections_exist() {
    let root = repo();
    let design = fs_err::read_to_string(root.join("docs/design.md")).unwrap();
    let sections: Vec<String> = design
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once('.').map(|(n, _)| n.to_string()))
        .collect();
    assert!(sections.len() >= 8, "{sections:?}");
    let mut cited = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "data-samples" {
                    stack.push(path);
                }
                continue;
            }
            if !["rs", "md", "py", "sh"]
                .iter()
                .any(|e| name.ends_with(&format!(".{e}")))
            {
                continue;
            }
            let text = fs_err::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("docs/design.md §") {
                let n: String = text[at + "docs/design.md §".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if n.is_empty() {
                    continue; // this file's own mentions
                }
                assert!(
                    sections.contains(&n),
                    "{} cites docs/design.md §{n}, which does not exist",
                    path.display()
                );
                cited += 1;
            }
        }
    }
    assert!(cited >= 15, "only {cited} citations found");
}

//! `oomprof flame`: an interactive SVG flame graph of a heap profile.
//!
//! Profile → per sample, its frames root first with inline frames expanded (the
//! function nodes of `report::frames`, the ones `top` counts) → folded stacks
//! (`a;b;c value`), summed → inferno's flame-graph renderer (search, zoom, tooltips)
//! → the SVG file.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::Context;
use argh::FromArgs;
use inferno::flamegraph::{self, color, Options};

use crate::report::frames::Frames;
use crate::report::load::{load, sample_index};
use crate::report::units::scaled_label;
use oom_cli::pprof_read::Profile;

/// write an SVG flame graph of a heap profile
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "flame",
    note = "Stacks are drawn root first with inline frames expanded; open the SVG in a \
            browser to search and zoom.",
    example = "{command_name} holder-4242-20261122013000.pb.gz -o heap.svg"
)]
pub struct FlameArgs {
    /// the profile (.pb.gz or uncompressed)
    #[argh(positional)]
    pub file: String,

    /// where to write the SVG (`-` for stdout)
    #[argh(option, short = 'o')]
    pub output: String,

    /// which value to show: inuse_space, inuse_objects, alloc_space, alloc_objects
    /// (default: the profile's default, inuse_space for Go heap profiles)
    #[argh(option)]
    pub sample_index: Option<String>,
}

/// Runs `flame`.
pub fn run(args: FlameArgs) -> anyhow::Result<()> {
    let output = args.output.as_str();
    let profile = load(&args.file)?;
    let index = sample_index(&profile, args.sample_index.as_deref())?;
    let title = match profile.main_file() {
        Some(f) => format!(
            "{} of {}",
            profile.sample_types[index].kind,
            f.rsplit('/').next().unwrap_or(f)
        ),
        None => profile.sample_types[index].kind.clone(),
    };
    let svg = render(&profile, index, &title)?;
    if output == "-" {
        std::io::stdout()
            .lock()
            .write_all(&svg)
            .context("writing the SVG to stdout")?;
    } else {
        std::fs::write(output, &svg).with_context(|| format!("writing {output}"))?;
        log::info!("wrote {output}");
    }
    Ok(())
}

/// Folded stacks of sample type `index`: root-first frame names joined by `;`, with
/// the summed value. Samples with a value ≤ 0 are left out (a flame graph has no
/// negative widths).
pub fn folded(p: &Profile, index: usize) -> BTreeMap<String, u64> {
    let frames = Frames::new(p);
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut stack = String::new();
    for s in &p.samples {
        let w = s.values.get(index).copied().unwrap_or(0);
        if w <= 0 {
            continue;
        }
        stack.clear();
        for &loc in s.locations.iter().rev() {
            for &node in frames.of_location(loc).iter().rev() {
                if !stack.is_empty() {
                    stack.push(';');
                }
                // `;` separates frames and a trailing number would read as a count.
                stack.extend(frames.name(node).chars().map(|c| match c {
                    ';' => ':',
                    c if c.is_whitespace() => '\u{a0}',
                    c => c,
                }));
            }
        }
        if stack.is_empty() {
            stack.push_str("<unknown>");
        }
        let v = stacks.entry(stack.clone()).or_default();
        *v = v.saturating_add(w as u64);
    }
    stacks
}

/// Renders the flame graph SVG.
///
/// Returns an error if the profile has nothing to draw or inferno fails.
pub fn render(p: &Profile, index: usize, title: &str) -> anyhow::Result<Vec<u8>> {
    let stacks = folded(p, index);
    if stacks.is_empty() {
        anyhow::bail!(
            "nothing to draw: no sample has a positive {} value",
            p.sample_types[index].kind
        );
    }
    let st = &p.sample_types[index];
    let total: u64 = stacks.values().fold(0, |a, &b| a.saturating_add(b));
    let lines: Vec<String> = stacks.iter().map(|(s, v)| format!("{s} {v}")).collect();
    let mut opt = Options::default();
    opt.title = title.to_string();
    let unit = st.unit.to_lowercase();
    opt.count_name = if unit == "count" || unit.is_empty() {
        "objects".into()
    } else {
        unit.clone()
    };
    let mut subtitle = format!(
        "total {}",
        scaled_label(total.min(i64::MAX as u64) as i64, &unit, "auto")
    );
    for c in p.comments.iter().filter(|c| !c.starts_with('#')) {
        subtitle.push_str(" · ");
        subtitle.push_str(c);
    }
    opt.subtitle = Some(subtitle);
    opt.colors = color::Palette::Basic(color::BasicPalette::Mem);
    opt.name_type = "Function:".into();
    // Same input, same SVG: colours derive from names, not a random generator.
    opt.hash = true;
    opt.deterministic = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut opt, lines.iter().map(String::as_str), &mut svg)
        .context("rendering the flame graph")?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof_fixture::fixture;
    use oom_cli::pprof_read::parse;

    #[test]
    fn stacks_are_root_first_with_inline_frames() {
        let p = parse(&fixture()).unwrap();
        let f = folded(&p, 1);
        let got: Vec<(&str, u64)> = f.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        assert_eq!(
            got,
            vec![("main.main", 6144), ("main.main;main.leaf;main.inl", 1024)]
        );
    }

    #[test]
    fn svg_names_the_functions() {
        let p = parse(&fixture()).unwrap();
        let svg = String::from_utf8(render(&p, 1, "alloc_space of prog").unwrap()).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..80]);
        assert!(svg.contains("main.inl"));
        assert!(svg.contains("alloc_space of prog"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let mut p = parse(&fixture()).unwrap();
        for s in &mut p.samples {
            s.values = vec![i64::MAX, i64::MIN, 1];
        }
        assert_eq!(folded(&p, 0).values().copied().max(), Some(i64::MAX as u64));
        let _ = render(&p, 0, "t");
        assert!(render(&p, 1, "t").is_err());
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let mut p = parse(&fixture()).unwrap();
        p.samples.clear();
        assert!(render(&p, 1, "t").is_err());
    }
}

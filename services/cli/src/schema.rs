//! `shoal schema generate`: the JSON Schemas of the wire types.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use shoal_protocol::schema;

/// Commands of `shoal schema`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print one schema, or write them all to a folder.
    Generate(GenerateArgs),
}

/// Flags of `shoal schema generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Print only this type's schema: worker, pool, job, event, or any file stem of schemas/.
    #[arg(short = 't', long = "type")]
    kind: Option<String>,
    /// Schema version.
    #[arg(short = 'v', long = "version", default_value = schema::SCHEMA_VERSION)]
    version: String,
    /// Write every schema into this folder as `<type>.json`.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Runs `shoal schema`.
pub fn run(command: SchemaCommand) -> anyhow::Result<()> {
    let SchemaCommand::Generate(args) = command;
    if args.version != schema::SCHEMA_VERSION {
        bail!(
            "version: `{}` is not known (the schemas are {})",
            args.version,
            schema::SCHEMA_VERSION
        );
    }
    if let Some(kind) = &args.kind {
        let Some(schema) = schema::by_name(kind) else {
            let known: Vec<_> = schema::all().into_iter().map(|(name, _)| name).collect();
            bail!("type: unknown type `{kind}` (known: {})", known.join(", "));
        };
        print!("{}", schema::to_file_text(&schema));
        return Ok(());
    }
    let dir = args.out_dir.unwrap_or_else(|| PathBuf::from("schemas"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, schema) in schema::all() {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, schema::to_file_text(&schema))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

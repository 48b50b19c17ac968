//! `shoal render k8s -f pool.yaml`: Kubernetes manifests for the pools of a
//! file (made by `shoal_supervisor::kubernetes`), printed as YAML documents.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use shoal_protocol::resource::Resource;
use shoal_supervisor::kubernetes::{manifests, RenderArgs};

/// Commands of `shoal render`.
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// Print Kubernetes manifests (with a KEDA ScaledObject) for the pools of a file.
    K8s(K8sArgs),
}

/// Flags of `shoal render k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// YAML file with one or more Pool resources.
    #[arg(short, long)]
    file: PathBuf,
    #[command(flatten)]
    render: RenderArgs,
}

/// Runs `shoal render`.
pub fn run(command: RenderCommand) -> anyhow::Result<()> {
    let RenderCommand::K8s(args) = command;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let resources = Resource::from_yaml(&text)
        .with_context(|| format!("{} is not a valid resource", args.file.display()))?;
    for document in manifests(&args.render, &resources)? {
        print!("---\n{}", serde_yaml::to_string(&document)?);
    }
    Ok(())
}

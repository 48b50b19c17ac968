//! `shoal workflow submit|get|cancel`: a graph of jobs, submitted all or
//! nothing, shown with each job's state, cancelled whole.

use anyhow::Context;
use clap::{Args, Subcommand};
use shoal_protocol::workflow::{dot, WorkflowFile};
use shoal_protocol::DEFAULT_GROUP;

use crate::connection::ConnectionArgs;
use crate::output::{print_document, print_table, Format};

/// Commands of `shoal workflow`.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Submit a workflow file: every job and the graph are stored, or none.
    Submit(SubmitArgs),
    /// Print each job of a workflow with its state (`-o dot`: a Graphviz graph).
    Get(GetArgs),
    /// Cancel every job of a workflow that has not ended.
    Cancel(NameArgs),
}

/// Flags of `shoal workflow submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The workflow file (YAML): name, group, worker_group, jobs.
    #[arg(short, long)]
    file: std::path::PathBuf,
    /// Group of the workflow, unless its file names one [default: default].
    #[arg(short, long)]
    group: Option<String>,
}

/// Flags naming one workflow.
#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The workflow's name.
    name: String,
    /// Its group.
    #[arg(short, long, default_value = DEFAULT_GROUP)]
    group: String,
}

/// Flags of `shoal workflow get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    workflow: NameArgs,
    /// table, json, yaml or dot.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json", "yaml", "dot"])]
    output: String,
}

/// Runs `shoal workflow`.
pub async fn run(command: WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::Submit(args) => {
            let path = args.file.display();
            let text = std::fs::read_to_string(&args.file).with_context(|| format!("{path}"))?;
            let file: WorkflowFile =
                serde_yaml::from_str(&text).with_context(|| format!("{path}"))?;
            let group = args.group.as_deref().unwrap_or(DEFAULT_GROUP);
            let client = args.connection.client().await?;
            let submitted = client.submit_workflow(group, &file).await?;
            let record = submitted.record;
            println!(
                "workflow {} submitted to group {}: {} jobs",
                record.name,
                record.group,
                record.jobs.len()
            );
            Ok(())
        }
        WorkflowCommand::Get(args) => {
            let NameArgs {
                connection,
                name,
                group,
            } = args.workflow;
            let state = connection.client().await?.workflow(&group, &name).await?;
            let states = state.states();
            match args.output.as_str() {
                "dot" => {
                    print!("{}", dot(&state.record, &states));
                    Ok(())
                }
                "json" | "yaml" => {
                    let format = if args.output == "json" {
                        Format::Json
                    } else {
                        Format::Yaml
                    };
                    let jobs: Vec<_> = state.jobs.values().collect();
                    let document = serde_json::json!({ "workflow": state.record, "jobs": jobs });
                    print_document(&document, format)
                }
                _ => {
                    let rows: Vec<Vec<String>> = (state.record.jobs.iter())
                        .map(|node| {
                            let id = &node.job_id;
                            let (queue, parents) = (node.queue.clone(), node.depends_on.join(","));
                            vec![
                                node.id.clone(),
                                id.clone(),
                                states[id].clone(),
                                queue,
                                parents,
                                state.why(id),
                            ]
                        })
                        .collect();
                    print_table(&["JOB", "ID", "STATE", "QUEUE", "DEPENDS ON", "WHY"], &rows);
                    Ok(())
                }
            }
        }
        WorkflowCommand::Cancel(args) => {
            let client = args.connection.client().await?;
            let cancelled = client.cancel_workflow(&args.group, &args.name).await?;
            println!(
                "workflow {}: {} jobs cancelled ({})",
                args.name,
                cancelled.len(),
                cancelled.join(", ")
            );
            Ok(())
        }
    }
}

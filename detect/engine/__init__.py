"""Training: what train.py runs (training), the LightningModule (module), learning-rate schedules (schedulers), the
initial weights of a run (initial_weights), checkpoints written atomically (checkpoint_io), preemption and resume
(preemption, csv_logger), divergence stops (divergence), Optuna sweeps (sweep, sweep_report), Lightning's
console lines that say nothing silenced (console). Imports the layers below it: utils, structures, config, tracking,
data, evaluation, analysis, modeling, export."""

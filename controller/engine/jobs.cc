#include "gitvirt/engine/jobs.h"

namespace gitvirt {

JobSettings JobSettings::For(const ControllerConfig& config) {
  JobSettings s;
  s.runner = StepRunnerOptionsFor(config);
  s.strategy = config.apply.rollback;
  s.parallel = config.apply.parallel;
  s.step_timeout = config.apply.step_timeout;
  for (const NodeConfig& n : config.nodes) s.per_node[n.name] = n.max_parallel;
  return s;
}

ExecutionOptions ExecutionFor(const JobSettings& settings, const RunRequest& request) {
  ExecutionOptions options;
  options.kind = request.kind;
  options.strategy = request.strategy.value_or(settings.strategy);
  options.parallel = request.parallel > 0 ? request.parallel : settings.parallel;
  options.step_timeout = settings.step_timeout;
  options.per_node = settings.per_node;
  options.interrupt = request.interrupt;
  options.confirm_rollback = request.confirm_rollback;
  options.shutdown = request.shutdown;
  options.on_progress = request.on_progress;
  options.caller_reports = request.caller_reports;
  return options;
}

Result<JobOutcome> RunJob(NodeSet& nodes, Journal& journal, const Plan& plan, const JobSettings& settings,
                          const RunRequest& request, const std::shared_ptr<spdlog::logger>& log) {
  LibvirtStepRunner runner(nodes, plan, plan.images, settings.runner, log);
  Executor executor(runner, journal, log);
  return executor.Apply(plan, ExecutionFor(settings, request));
}

Result<JobOutcome> RecoverJob(NodeSet& nodes, Journal& journal, const std::string& job_id, const Plan& plan,
                              const JobSettings& settings, const std::shared_ptr<spdlog::logger>& log) {
  LibvirtStepRunner runner(nodes, plan, plan.images, settings.runner, log);
  Executor executor(runner, journal, log);
  // The job's own strategy and kind come from the journal; the rest from the configuration.
  return executor.Recover(job_id, ExecutionFor(settings, RunRequest{}));
}

}  // namespace gitvirt

// The libvirt step runner's undo against a simulated node: an undo runs again after a crash
// (the journal may not have kept that it was done), so each must accept a world where it, or a
// later undo, already happened; a release's undo puts back the owner mark its record keeps; an
// adopt writes the owner mark only, and its undo takes it away again.
#include "gitvirt/engine/step_runner.h"

#include <gtest/gtest.h>

#include "gitvirt/core/json.h"
#include "gitvirt/hypervisor/connect.h"
#include "gitvirt/hypervisor/node_set.h"
#include "temp_dir.h"

namespace gitvirt {
namespace {

class NullContext final : public StepContext {
 public:
  const std::string& job_id() const override { return id_; }
  const std::string& step_id() const override { return id_; }
  Result<void> RecordUndo(const std::string&) override { return {}; }
  std::string undo_json() const override { return "{}"; }
  void Event(EventLevel, const std::string&) override {}
  bool Cancelled() const override { return false; }
  std::chrono::steady_clock::time_point deadline() const override {
    return std::chrono::steady_clock::now() + std::chrono::minutes(1);
  }

 private:
  std::string id_ = "job";
};

class StepRunnerUndo : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.state = (dir_.path() / "gitvirt.db").string();
    NodeConfig node;
    node.name = "hv1";
    node.uri = "sim:" + (dir_.path() / "hv1.xml").string();
    node.pools = {PoolConfig{"default", (dir_.path() / "images").string()}};
    config_.nodes = {node};
    auto hv = ConnectNode(node, HypervisorOptions{});
    ASSERT_TRUE(hv) << hv.error().ToString();
    hv_ = hv->get();
    VirtualMachine vm;
    vm.meta.name = "vm-01";
    vm.spec.node = "hv1";
    vm.spec.vcpus = 1;
    vm.spec.memory = 512ULL << 20;
    DomainDefinition def;
    def.vm = vm;
    def.owner.name = vm.meta.name;
    ASSERT_TRUE(hv_->domains().Define(def));
    ASSERT_TRUE(hv_->power().Start("vm-01"));
    nodes_ = std::make_unique<NodeSet>(config_.nodes);
    nodes_->Put("hv1", std::move(*hv));
    start_.id = "start/vm-01";
    start_.type = ActionType::kStart;
    start_.node = "hv1";
    start_.target = ResourceRef{Kind::kVirtualMachine, "vm-01"};
    runner_.emplace(*nodes_, plan_, plan_.images, StepRunnerOptions{(dir_.path() / "cache").string(), "", ""}, nullptr);
  }

  testing::TempDir dir_{"gv-undo"};
  ControllerConfig config_;
  Node* hv_ = nullptr;
  std::unique_ptr<NodeSet> nodes_;
  Plan plan_;
  Action start_;
  std::optional<LibvirtStepRunner> runner_;
  NullContext ctx_;
};

TEST_F(StepRunnerUndo, UndoingAStartStopsTheDomain) {
  auto undone = runner_->Undo(start_, R"({"previousPower":"Stopped"})", ctx_);
  ASSERT_TRUE(undone) << undone.error().ToString();
  EXPECT_EQ(*undone, UndoOutcome::kUndone);
  EXPECT_EQ(*hv_->power().Get("vm-01"), PowerState::kStopped);
}

TEST_F(StepRunnerUndo, UndoingAStartOfADomainAlreadyUndoneIsDone) {
  // The crash came after the create of vm-01 was undone but before the journal kept that its
  // start had been undone first: the rollback after the restart undoes the start again.
  ASSERT_TRUE(hv_->domains().Undefine("vm-01"));
  auto undone = runner_->Undo(start_, R"({"previousPower":"Stopped"})", ctx_);
  ASSERT_TRUE(undone) << undone.error().ToString();
  EXPECT_EQ(*undone, UndoOutcome::kUndone);
}

TEST_F(StepRunnerUndo, UndoingAReleasePutsTheOwnerMarkBack) {
  Action release = start_;
  release.id = "release/vm-01";
  release.type = ActionType::kRelease;
  auto before = hv_->domains().ObserveVm("vm-01");
  ASSERT_TRUE(before && before->owner);
  auto undo = runner_->Prepare(release, ctx_);
  ASSERT_TRUE(undo) << undo.error().ToString();
  ASSERT_TRUE(runner_->Run(release, ctx_));
  EXPECT_FALSE(hv_->domains().ObserveVm("vm-01")->owner) << "released";
  auto undone = runner_->Undo(release, *undo, ctx_);
  ASSERT_TRUE(undone) << undone.error().ToString();
  EXPECT_EQ(*undone, UndoOutcome::kUndone);
  EXPECT_EQ(hv_->domains().ObserveVm("vm-01")->owner, before->owner);
}

TEST_F(StepRunnerUndo, AdoptWritesOnlyTheOwnerMarkAndItsUndoRemovesIt) {
  // vm-01 without gitvirt's mark: a domain made by hand, running.
  ASSERT_TRUE(hv_->domains().SetOwner("vm-01", std::nullopt));
  auto before = hv_->domains().Save("vm-01");
  ASSERT_TRUE(before);
  Action adopt = start_;
  adopt.id = "adopt/vm-01";
  adopt.type = ActionType::kAdopt;
  VirtualMachine vm;
  vm.meta.name = "vm-01";
  vm.meta.labels = {{"tier", "web"}};
  vm.spec.node = "hv1";
  vm.spec.vcpus = 1;
  vm.spec.memory = 512ULL << 20;
  vm.spec.adopt = true;
  adopt.vm = vm;
  auto undo = runner_->Prepare(adopt, ctx_);
  ASSERT_TRUE(undo) << undo.error().ToString();
  auto ran = runner_->Run(adopt, ctx_);
  ASSERT_TRUE(ran) << ran.error().ToString();
  auto now = hv_->domains().ObserveVm("vm-01");
  ASSERT_TRUE(now && now->owner);
  EXPECT_EQ(now->owner->name, "vm-01");
  EXPECT_EQ(now->owner->job, "job");
  EXPECT_EQ(now->owner->spec_hash, SpecHash(vm.spec));
  EXPECT_EQ(now->owner->labels, vm.meta.labels);
  EXPECT_TRUE(now->owner->created_volumes.empty()) << "no volume becomes gitvirt's";
  EXPECT_EQ(now->power, PowerState::kRunning) << "no restart";
  // Run again (a resumed step): done, nothing changes.
  auto again = runner_->Run(adopt, ctx_);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_NE(again->find("alreadyDone"), std::string::npos);
  auto undone = runner_->Undo(adopt, R"({"marked":true})", ctx_);
  ASSERT_TRUE(undone) << undone.error().ToString();
  EXPECT_EQ(*undone, UndoOutcome::kUndone);
  EXPECT_FALSE(hv_->domains().ObserveVm("vm-01")->owner);
  EXPECT_EQ(hv_->power().Get("vm-01").value(), PowerState::kRunning);
}

TEST_F(StepRunnerUndo, AdoptRefusesADomainAnotherJobTookOver) {
  Action adopt = start_;
  adopt.id = "adopt/vm-01";
  adopt.type = ActionType::kAdopt;
  VirtualMachine vm;
  vm.meta.name = "vm-01";
  vm.spec.vcpus = 2;  // not the spec the existing mark holds
  vm.spec.memory = 512ULL << 20;
  adopt.vm = vm;
  auto ran = runner_->Run(adopt, ctx_);
  ASSERT_FALSE(ran);
  EXPECT_EQ(ran.error().code, ErrorCode::kAlreadyExists);
  // Its undo leaves another job's mark alone.
  auto undone = runner_->Undo(adopt, R"({"marked":true})", ctx_);
  ASSERT_TRUE(undone) << undone.error().ToString();
  EXPECT_TRUE(hv_->domains().ObserveVm("vm-01")->owner);
}

}  // namespace
}  // namespace gitvirt

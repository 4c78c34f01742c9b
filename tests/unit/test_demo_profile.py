"""The demo profile's training budget: per-task step caps over one epoch rule, and nothing of it in
the paper profile, which follows the study."""
from benchmark.catalog.registries import task_registry
from benchmark.core.specs import TrainingRecipe
from benchmark.evaluation.profiles import DEMO_STEPS, DEMO_TRAINING, PROFILES


def test_step_budgets_name_embedded_tasks_and_raise_the_default():
    """A misspelt task name would silently leave that task at the default budget."""
    embedded = {e.name for e in task_registry() if e.obj.spec.embedded}
    assert set(DEMO_STEPS) <= embedded
    assert all(steps > DEMO_TRAINING["max_steps"] for steps in DEMO_STEPS.values())


def test_each_task_trains_for_its_budget_and_keeps_its_class_weights():
    demo = PROFILES["demo"]
    for entry in task_registry():
        spec = entry.obj.spec
        recipe = demo.training(spec.training, task=spec.name)
        assert recipe.max_steps == DEMO_STEPS.get(spec.name, DEMO_TRAINING["max_steps"]), spec.name
        assert recipe.epochs == DEMO_TRAINING["epochs"] and recipe.dice_loss
        assert recipe.class_weights == spec.training.class_weights
    # without a task name (the split planner asks only whether a hold-out is needed) the default applies
    assert demo.training(TrainingRecipe()).max_steps == DEMO_TRAINING["max_steps"]


def test_the_paper_profile_trains_each_task_by_the_study_recipe():
    paper = PROFILES["paper"]
    assert paper.step_budgets == {} and paper.training_overrides == {}
    for entry in task_registry():
        spec = entry.obj.spec
        assert paper.training(spec.training, task=spec.name) == spec.training, spec.name

"""The review project in Label Studio: labeling config, instructions, task order; created idempotently.

The config has one Image, a RectangleLabels person box, KeyPointLabels with the 17 COCO names
(`model_index` = the joint's COCO index) and a per-region visibility choice (visible / occluded)
that shares the keypoint's region id. Annotators get open tasks at random (Label Studio's uniform
sampling; `POSEWHEEL_LABELSTUDIO_SAMPLING=uncertainty` gives the least confident first): at the loop's
real budget, random picks taught the model as much as the least confident ones
(benchmarks/flywheel_curve.py, docs/flywheel.md). The project's default tab is ordered by prediction
score, ascending, for a person who wants to look at the worst first.

Creation is safe from several processes at once (two replicas starting together): the oldest
project with the title is the project. A creator lists the projects again after creating, uses the
oldest and renames newer ones that are still empty out of the way. Ids grow with creation, so a later creator
always sees the earlier project, and all agree on one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from posewheel.schema import KEYPOINT_NAMES

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

    from labeling.settings import Sampling

log = logging.getLogger(__name__)
IMAGE_NAME = "image"
BOX_NAME = "person"
BOX_LABEL = "person"
KEYPOINTS_NAME = "keypoints"
VISIBILITY_NAME = "visibility"
VISIBLE, OCCLUDED = "visible", "occluded"
VIEW_TITLE = "Least confident first"
_TITLE_MAX = 50  # Label Studio's limit on a project title
_SETTLE_PAUSE_S = 0.3  # between the listings that must agree after a create
_SETTLE_LISTINGS = 5
_PREDICTIONS_PER_REQUEST = 500  # Label Studio imports predictions in batches of this size anyway

INSTRUCTIONS = """\
<p>Correct the model's pose of each person.</p>
<ul>
<li>Drag every joint to where it is. Left and right are the <b>person's own</b> (a person facing you
has their left side on the right of the image).</li>
<li>Select a joint and choose <b>occluded</b> when it is hidden but you can tell where it is;
otherwise leave or choose <b>visible</b>.</li>
<li>Delete a joint you cannot place at all (outside the image or fully unknown).</li>
<li>Fix the person box when it is wrong.</li>
<li><b>A missed person:</b> pick the <b>person</b> label and draw a box around them first (start
the drag outside every other box: a drag that starts inside a box moves that box). Then click the new
box and press <b>Alt+H</b> to hide it (a click inside a shown box selects the box instead of placing
a joint), and place each of their joints: press <b>Esc</b>, pick the joint's name, click where it is.
Joints belong to the box drawn just before them: finish one person before you draw the next box.
To add a joint to a person already there, hide their box the same way.</li>
<li><b>A person who is not there:</b> press <b>V</b> (move tool), drag a rectangle from outside
their box over the box and every joint of theirs, check the region list, and press
<b>Backspace</b> to delete them.</li>
<li>An image with nobody in it: delete every region (<b>Ctrl/Cmd+Backspace</b>) and submit: an empty
image is a useful label. Skip only when you cannot tell.</li>
</ul>"""

# Colours along the body: head yellow, left side green, right side blue (as in most pose viewers).
_COLOURS = {"nose": "#f5c400", "eye": "#f5c400", "ear": "#f5c400"}


def _colour(name: str) -> str:
    part = name.split("_")[-1]
    if part in _COLOURS:
        return _COLOURS[part]
    return "#20b050" if name.startswith("left_") else "#2070f0"


# ours (labeling.settings.Sampling) -> Label Studio's
SAMPLING: dict[Sampling, str] = {"uniform": "Uniform sampling", "uncertainty": "Uncertainty sampling"}


def _settings(sampling: Sampling) -> dict[str, Any]:
    return {
        "label_config": label_config(),
        "expert_instruction": INSTRUCTIONS,
        "show_instruction": True,
        "show_skip_button": True,
        "sampling": SAMPLING[sampling],
        "maximum_annotations": 1,
    }


def label_config() -> str:
    """The Label Studio XML labeling config for one person's box and COCO-17 keypoints."""
    labels = "\n".join(
        f'    <Label value={quoteattr(name)} model_index="{i}" background="{_colour(name)}"/>'
        for i, name in enumerate(KEYPOINT_NAMES)
    )
    return f"""<View>
  <Header value="Correct every person: move joints, mark hidden ones occluded, add or delete persons (Instructions)."/>
  <Image name="{IMAGE_NAME}" value="$image" zoom="true" zoomControl="true"/>
  <RectangleLabels name="{BOX_NAME}" toName="{IMAGE_NAME}">
    <Label value="{BOX_LABEL}" background="#ff7f0e"/>
  </RectangleLabels>
  <KeyPointLabels name="{KEYPOINTS_NAME}" toName="{IMAGE_NAME}" strokeWidth="2" opacity="0.9">
{labels}
  </KeyPointLabels>
  <Choices name="{VISIBILITY_NAME}" toName="{IMAGE_NAME}" perRegion="true" choice="single" showInline="true"
           visibleWhen="region-selected" whenLabelValue="{",".join(KEYPOINT_NAMES)}">
    <Choice value="{VISIBLE}"/>
    <Choice value="{OCCLUDED}"/>
  </Choices>
</View>
"""


def find_project(client: LabelStudio, title: str) -> int | None:
    """The id of the oldest project titled exactly `title`, else None."""
    projects: Iterable[Any] = client.projects.list(title=title, page_size=100)
    ids = [p.id for p in projects if p.title == title and p.id is not None]
    return min(ids) if ids else None


def ensure_project(client: LabelStudio, title: str | None = None, sampling: Sampling | None = None) -> int:
    """Create the review project, or bring an existing one up to date; returns its id. Idempotent,
    also when several processes call it at once (all of them get the same project). `title` and
    `sampling` ('uniform' or 'uncertainty') default to the settings'."""
    if title is None or sampling is None:
        from labeling.settings import LabelStudioSettings

        settings = LabelStudioSettings()
        title = settings.project_title if title is None else title
        sampling = settings.sampling if sampling is None else sampling
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {sorted(SAMPLING)}, got {sampling!r}")
    project_id = find_project(client, title)
    if project_id is None:
        from label_studio_sdk.core.api_error import ApiError

        created_id: int | None = None
        try:
            created_id = client.projects.create(title=title, **_settings(sampling)).id
        except ApiError as exc:
            # Label Studio on sqlite answers 500 "database is locked" to concurrent creates, sometimes
            # after creating the project: whatever happened, the listing below decides.
            if exc.status_code is None or exc.status_code < 500:
                raise
            log.warning("creating project %r: Label Studio answered %s; looking again", title, exc.status_code)
        project_id = _settle(client, title)
        if project_id == created_id:
            _ensure_view(client, project_id)
            return project_id
    project = client.projects.get(project_id)
    # Label Studio strips surrounding whitespace from text: compare what it keeps. (Only the text
    # fields: updating maximum_annotations makes Label Studio recount every task's state.)
    wanted = {k: v for k, v in _settings(sampling).items() if k in ("label_config", "expert_instruction", "sampling")}
    changed = {k: v for k, v in wanted.items() if str(getattr(project, k, None) or "").strip() != v.strip()}
    if changed:
        client.projects.update(project_id, **changed)
    _ensure_view(client, project_id)
    return project_id


def _settle(client: LabelStudio, title: str) -> int:
    """After a create: the oldest project titled `title`; newer empty ones are renamed out of the way.

    Several processes creating at once each made one (Label Studio on sqlite may even make two per
    request): ids grow with creation, so every creator sees the oldest and agrees on it. Duplicates
    are renamed, not deleted: Label Studio deletes a project with every signal of the process
    switched off, and two deletes at once leave them off for good (task counters stop updating).
    """
    oldest = _rename_duplicates(client, title)
    # A create still in flight elsewhere can commit an older id after this listing (sqlite orders the
    # ids by insert, not by commit): the answer stands only once two listings a moment apart agree.
    for _ in range(_SETTLE_LISTINGS):
        time.sleep(_SETTLE_PAUSE_S)
        again = _rename_duplicates(client, title)
        if again == oldest:
            return oldest
        oldest = again
    return oldest


def _rename_duplicates(client: LabelStudio, title: str) -> int:
    """The oldest project titled `title`; the newer empty ones get an `unused duplicate` title."""
    from label_studio_sdk.core.api_error import ApiError

    projects: Iterable[Any] = client.projects.list(title=title, page_size=100)
    same = sorted((p for p in projects if p.title == title and p.id is not None), key=lambda p: p.id)
    if not same:
        raise RuntimeError(f"Label Studio lists no project {title!r} right after creating it")
    for duplicate in same[1:]:
        if getattr(duplicate, "task_number", 0):
            log.warning(
                "project %r exists twice with tasks (%d and %d); using the older one", title, same[0].id, duplicate.id
            )
            continue
        unused = f"unused duplicate {duplicate.id} of {title}"[:_TITLE_MAX]
        try:
            client.projects.update(duplicate.id, title=unused)
            log.info(
                "project %r was created more than once at the same time; renamed empty duplicate %d",
                title,
                duplicate.id,
            )
        except ApiError as exc:  # 404: removed meanwhile; 5xx: it keeps its title, and stays unused
            if exc.status_code is None or (exc.status_code != 404 and exc.status_code < 500):
                raise
    return int(same[0].id)


def _ensure_view(client: LabelStudio, project_id: int) -> None:
    """A data manager tab that lists tasks by prediction score, least confident first."""
    for view in client.views.list(project=project_id):
        if isinstance(view.data, dict) and view.data.get("title") == VIEW_TITLE:
            return
    client.views.create(
        project=project_id,
        data={"title": VIEW_TITLE, "ordering": ["tasks:predictions_score"]},
    )


def open_tasks_query() -> str:
    """A data manager query (JSON text) for tasks nobody has annotated or skipped yet."""
    items = [
        {"filter": f"filter:tasks:{field}", "operator": "equal", "type": "Number", "value": 0}
        for field in ("total_annotations", "cancelled_annotations")
    ]
    return json.dumps({"filters": {"conjunction": "and", "items": items}})


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def carry_predictions_forward(client: LabelStudio, project_id: int, version: str) -> int:
    """Give every open task without a `version` prediction a copy of its newest prediction under
    `version` (same result and score); returns how many tasks got one. See `set_model_version`."""
    pager: Iterable[Any] = client.tasks.list(
        project=project_id, fields="all", query=open_tasks_query(), resolve_uri=False, page_size=1000
    )
    copies: list[dict[str, Any]] = []
    for task in pager:
        if task.total_annotations or task.cancelled_annotations:
            continue  # done meanwhile: nobody opens it as a pre-annotated task again
        predictions = [p for p in task.predictions or [] if _field(p, "result")]
        if not predictions or any(_field(p, "model_version") == version for p in predictions):
            continue
        newest = max(predictions, key=lambda p: (str(_field(p, "created_at") or ""), _field(p, "id") or 0))
        copies.append(
            {
                "task": task.id,
                "result": _field(newest, "result"),
                "score": _field(newest, "score"),
                "model_version": version,
            }
        )
    for start in range(0, len(copies), _PREDICTIONS_PER_REQUEST):
        client.projects.import_predictions(project_id, request=copies[start : start + _PREDICTIONS_PER_REQUEST])  # type: ignore[arg-type]
    if copies:
        log.info("model version %s: %d open task(s) keep their pre-annotation under it", version, len(copies))
    return len(copies)


def set_model_version(client: LabelStudio, project_id: int, version: str) -> None:
    """Point the project at the served model `version` (Label Studio sets it only once); open tasks
    keep a visible pre-annotation.

    Label Studio shows an annotator only the predictions of the project's `model_version`: the label
    stream (`/api/projects/{id}/next`: `NextTaskSerializer.get_predictions` ->
    `Task.get_predictions_for_prelabeling`, label_studio/tasks/serializers.py and tasks/models.py),
    uncertainty sampling (`_try_uncertainty_sampling`, projects/functions/next_task.py) and the data
    manager's prediction score, by which our "least confident first" tab sorts
    (`annotate_predictions_score`, data_manager/managers.py), all filter on it. Moved to a new version,
    an open task predicted by the old model would open with no pose at all and fall out of the
    least-confident-first order. So before the move, every open task gets a copy of its newest
    prediction under the new version: the annotator still starts from a model's pose. The task's data
    keeps the model that really predicted it (`data.model_version`), which the export records.

    Not chosen: keeping the old version until its tasks are done (tasks of the new model would open
    empty instead: one version is shown at a time), and predicting open tasks again (labeling never
    runs a model; a Label Studio ML backend named after the version would, but Label Studio asks it
    only for tasks with no prediction of that version, tasks/models.py, so it is not this function's job).
    """
    project = client.projects.get(project_id)
    if getattr(project, "model_version", None) != version:
        carry_predictions_forward(client, project_id, version)
        client.projects.update(project_id, model_version=version)

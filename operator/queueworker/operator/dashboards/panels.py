"""Building blocks both dashboards share: the data source, variables, panels and layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

# Every panel and query reads the Prometheus the `datasource` variable selects.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# The label matchers that make a per-QueueWorker query follow the dashboard's variables.
SELECTED = 'namespace=~"$namespace", queueworker=~"$queueworker"'

REF_IDS = "ABCDEFGH"


def query_variable(name: str, label: str, source: str) -> dashboard_builders.QueryVariable:
    """A multi-value variable listing the values of label `name` on the series `source`."""
    expr = f"label_values({source}, {name})"
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": expr, "refId": f"{name}-var"})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        # "All" is a regex that also matches series without the label: a worker run
        # outside Kubernetes exports no namespace or queueworker label.
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def _target(expr: str, legend: str, ref_id: str, *, instant: bool) -> prometheus.Dataquery:
    target = (prometheus.Dataquery().ref_id(ref_id).datasource(DATASOURCE).expr(expr)
              .legend_format(legend))
    return target.instant() if instant else target.range()


@dataclass(frozen=True)
class Series:
    """A timeseries panel. `queries` are (PromQL, legend) pairs, in refId order."""

    title: str
    description: str
    width: int
    unit: str
    queries: Sequence[tuple[str, str]]
    min: float | None = None
    max: float | None = None
    stacked: bool = False
    bars: bool = False
    calcs: Sequence[str] = ("lastNotNull", "max")
    # Series whose name matches the regex are drawn dashed (limits, not measurements).
    dashed: str | None = None

    def builder(self) -> timeseries.Panel:
        stacking = common.StackingMode.NORMAL if self.stacked else common.StackingMode.NONE
        panel = (
            timeseries.Panel()
            .title(self.title)
            .description(self.description)
            .datasource(DATASOURCE)
            .height(8)
            .span(self.width)
            .unit(self.unit)
            .draw_style(common.GraphDrawStyle.BARS if self.bars else common.GraphDrawStyle.LINE)
            .line_width(1)
            .fill_opacity(80 if self.bars else 10)
            .show_points(common.VisibilityMode.NEVER)
            .span_nulls(False)
            .stacking(common_builders.StackingConfig().mode(stacking).group("A"))
            .legend(common_builders.VizLegendOptions()
                    .show_legend(True)
                    .display_mode(common.LegendDisplayMode.TABLE)
                    .placement(common.LegendPlacement.BOTTOM)
                    .calcs(list(self.calcs)))
            .tooltip(common_builders.VizTooltipOptions()
                     .mode(common.TooltipDisplayMode.MULTI)
                     .sort(common.SortOrder.DESCENDING))
        )
        if self.min is not None:
            panel = panel.min(self.min)
        if self.max is not None:
            panel = panel.max(self.max)
        if self.dashed is not None:
            panel = panel.override_by_regexp(self.dashed, [model.DynamicConfigValue(
                id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})])
        for ref_id, (expr, legend) in zip(REF_IDS, self.queries, strict=False):
            panel = panel.with_target(_target(expr, legend, ref_id, instant=False))
        return panel


@dataclass(frozen=True)
class Stat:
    """A single-value panel: the last value of one instant query per series."""

    title: str
    description: str
    width: int
    unit: str
    expr: str
    legend: str
    min: float = 0
    max: float = 1

    def builder(self) -> stat.Panel:
        return (
            stat.Panel()
            .title(self.title)
            .description(self.description)
            .datasource(DATASOURCE)
            .height(8)
            .span(self.width)
            .unit(self.unit)
            .min(self.min)
            .max(self.max)
            .reduce_options(common_builders.ReduceDataOptions()
                            .calcs(["lastNotNull"]).values(False).fields(""))
            .color_mode(common.BigValueColorMode.VALUE)
            .graph_mode(common.BigValueGraphMode.NONE)
            .text_mode(common.BigValueTextMode.AUTO)
            .orientation(common.VizOrientation.AUTO)
            .justify_mode(common.BigValueJustifyMode.AUTO)
            .with_target(_target(self.expr, self.legend, "A", instant=True))
        )


@dataclass(frozen=True)
class Board:
    """A dashboard: identity, variables, and rows of panels laid out left to right."""

    uid: str
    title: str
    description: str
    variables: Sequence[dashboard_builders.QueryVariable]
    rows: Sequence[tuple[str, Sequence[Series | Stat]]] = field(default_factory=tuple)

    def build(self) -> model.Dashboard:
        board = (
            dashboard_builders.Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags(["queueworker"])
            .editable()
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .refresh("30s")
            .time("now-3h", "now")
            .timezone("")
            .annotation(dashboard_builders.AnnotationQuery()
                        .name("Annotations & Alerts")
                        .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                        .enable(True)
                        .hide(True)
                        .icon_color("rgba(0, 211, 255, 1)")
                        .type("dashboard")
                        .built_in(1))
            .link(dashboard_builders.DashboardLink("queueworker")
                  .type(model.DashboardLinkType.DASHBOARDS)
                  .tags(["queueworker"])
                  .as_dropdown(False)
                  .include_vars(True)
                  .keep_time(True))
            .with_variable(dashboard_builders.DatasourceVariable("datasource")
                           .label("Data source").type("prometheus"))
        )
        for variable in self.variables:
            board = board.with_variable(variable)
        # Panel ids number rows and panels in order, as Grafana does for a new dashboard.
        next_id = 1
        for title, panels in self.rows:
            board = board.with_row(dashboard_builders.Row(title).id(next_id))
            next_id += 1
            for panel in panels:
                board = board.with_panel(panel.builder().id(next_id))
                next_id += 1
        return board.build()

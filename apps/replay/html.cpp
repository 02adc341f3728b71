// The HTML timeline: one self-contained page, inline CSS, no scripts, no
// fonts or images from elsewhere. Bars are absolutely positioned divs whose
// left/width are percentages of the order's time span.

#include <algorithm>
#include <cstdio>

#include "keel/events/json.hpp"
#include "timeline.hpp"

namespace keel::replay {

namespace {

constexpr const char* style = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#556;margin-bottom:16px}
.status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
.status.completed{background:#2e7d32}.status.cancelled,.status.rejected{background:#b23b3b}
.status.other{background:#8a6d00}
.wf{border:1px solid #d9dde5;border-radius:6px;padding:8px 12px;margin-bottom:20px}
.row{display:flex;align-items:center;height:26px;border-bottom:1px solid #f0f2f5}
.label{width:330px;flex:none;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:13px}
.label small{color:#778}
.track{position:relative;flex:1;height:18px}
.bar{position:absolute;top:3px;height:12px;border-radius:3px;min-width:3px}
.bar.open{background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.5) 0 4px,transparent 4px 8px)}
.tick{position:absolute;top:0;width:2px;height:18px;background:#1d2330;opacity:.55}
.band{position:absolute;top:0;bottom:0;background:rgba(211,47,47,.10);border-left:1px dashed #d32f2f}
.band.half_open{background:rgba(255,160,0,.12);border-left-color:#ffa000}
.out{position:absolute;top:1px;font-size:11px;color:#445;white-space:nowrap}
.axis{display:flex;color:#778;font-size:11px;margin-left:330px;justify-content:space-between}
.lane-saga{background:#5c6bc0}.lane-inventory{background:#26a69a}.lane-payment{background:#ef6c00}
.lane-shipping{background:#8e24aa}.lane-retry-queue{background:#9e9e9e}.lane-breaker{background:#d32f2f}
.lane-breaker.half_open{background:#ffa000}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-2px}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{background:#f5f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td code{font-size:11px;word-break:break-all}
)";

std::string pct(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f%%", std::clamp(x, 0.0, 100.0));
  return buf;
}

struct scale {
  std::int64_t t0;
  std::int64_t span;
  double at(std::int64_t us) const {
    return 100.0 * static_cast<double>(us - t0) / static_cast<double>(span);
  }
};

std::string bar(const scale& s, std::int64_t from, std::int64_t until, const std::string& cls,
                const std::string& title) {
  auto left = s.at(from);
  auto width = std::max(0.4, s.at(until) - left);
  return "<div class=\"bar " + cls + "\" style=\"left:" + pct(left) + ";width:" + pct(width)
         + "\" title=\"" + html_escape(title) + "\"></div>";
}

std::string bands(const timeline& t, const scale& s) {
  std::string out;
  for (auto& b : t.breakers)
    out += "<div class=\"band " + html_escape(b.state) + "\" style=\"left:" + pct(s.at(b.from_us))
           + ";width:" + pct(std::max(0.2, s.at(b.until_us) - s.at(b.from_us))) + "\" title=\""
           + html_escape("breaker " + b.breaker + " " + b.state) + "\"></div>";
  return out;
}

std::string step_rows(const timeline& t, const scale& s) {
  std::string out;
  for (auto& st : t.steps) {
    auto rel = relative_time(st.start_us - t.placed_us) + " .. "
               + relative_time(st.end_us - t.placed_us);
    out += "<div class=\"row\"><div class=\"label\">" + html_escape(st.name) + " <small>@"
           + std::to_string(st.driver_version) + " " + html_escape(st.driver_type)
           + "</small></div><div class=\"track\">" + bands(t, s);
    out += bar(s, st.start_us, st.end_us, "lane-" + st.lane + (st.open ? " open" : ""),
               st.name + ": " + rel + " -> " + st.outcome);
    for (auto& [at, type] : st.ticks)
      out += "<div class=\"tick\" style=\"left:" + pct(s.at(at)) + "\" title=\""
             + html_escape(type + " at " + relative_time(at - t.placed_us)) + "\"></div>";
    auto right = s.at(st.end_us);
    auto label_pos = right > 70 ? "right:" + pct(100 - s.at(st.start_us) + 0.5)
                                : "left:" + pct(right + 0.8);
    out += "<div class=\"out\" style=\"" + label_pos + "\">" + html_escape(st.outcome) + " ("
           + html_escape(relative_time(st.end_us - st.start_us).substr(1)) + ")</div>";
    out += "</div></div>\n";
  }
  return out;
}

std::string breaker_rows(const timeline& t, const scale& s) {
  std::string out;
  std::vector<std::string> names;
  for (auto& b : t.breakers)
    if (std::find(names.begin(), names.end(), b.breaker) == names.end())
      names.push_back(b.breaker);
  for (auto& name : names) {
    out += "<div class=\"row\"><div class=\"label\">breaker " + html_escape(name)
           + "</div><div class=\"track\">";
    for (auto& b : t.breakers)
      if (b.breaker == name)
        out += bar(s, b.from_us, b.until_us, "lane-breaker " + html_escape(b.state),
                   name + " " + b.state + " " + relative_time(b.from_us - t.placed_us) + " .. "
                     + relative_time(b.until_us - t.placed_us));
    out += "</div></div>\n";
  }
  return out;
}

std::string event_table(const timeline& t) {
  std::string out = "<table><tr><th>time</th><th>lane</th><th>event</th><th>stream@version</th>"
                    "<th>pos</th><th>caused by</th><th>details</th></tr>\n";
  for (auto& r : t.rows) {
    auto where = r.version == 0 ? r.stream : r.stream + "@" + std::to_string(r.version);
    out += "<tr><td class=\"num\">" + html_escape(relative_time(r.timestamp_us - t.placed_us))
           + "</td><td><i class=\"lane-" + html_escape(r.lane)
           + "\" style=\"display:inline-block;width:8px;height:8px;border-radius:2px\"></i> "
           + html_escape(r.lane) + "</td><td>" + html_escape(r.type) + "</td><td>"
           + html_escape(where) + "</td><td class=\"num\">" + std::to_string(r.position)
           + "</td><td>" + html_escape(r.caused_by) + "</td><td><code>" + html_escape(r.details)
           + "</code></td></tr>\n";
  }
  return out + "</table>\n";
}

} // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_html(const timeline& t) {
  auto t0 = t.placed_us;
  for (auto& b : t.breakers)
    t0 = std::min(t0, b.from_us);
  scale s{t0, std::max<std::int64_t>(1, t.end_us - t0)};
  auto status_cls = t.status == "completed" || t.status == "cancelled" || t.status == "rejected"
                      ? t.status
                      : std::string{"other"};
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<title>order " + html_escape(t.order_id) + " - keel-replay</title><style>"
                    + style + "</style></head><body>\n";
  out += "<h1>order " + html_escape(t.order_id) + " <span class=\"status " + status_cls + "\">"
         + html_escape(t.status) + "</span></h1>\n";
  out += "<div class=\"meta\">placed " + html_escape(events::format_timestamp(t.placed_us))
         + " &middot; last event " + html_escape(relative_time(t.end_us - t.placed_us))
         + (t.reason.empty() ? "" : " &middot; " + html_escape(t.reason))
         + " &middot; correlation <code>" + html_escape(t.correlation_id) + "</code> &middot; "
         + std::to_string(t.order_events) + " saga events, " + std::to_string(t.service_events)
         + " service events, " + std::to_string(t.breaker_events)
         + " breaker transitions</div>\n";
  out += "<div class=\"legend\">";
  for (auto* lane : {"saga", "inventory", "payment", "shipping", "retry-queue", "breaker"})
    out += std::string{"<span><i class=\"lane-"} + lane + "\"></i>" + lane + "</span>";
  out += "<span><i style=\"background:rgba(211,47,47,.25)\"></i>breaker open</span></div>\n";
  out += "<div class=\"wf\">\n<div class=\"axis\"><span>"
         + html_escape(relative_time(t0 - t.placed_us)) + "</span><span>"
         + html_escape(relative_time((t0 + t.end_us) / 2 - t.placed_us)) + "</span><span>"
         + html_escape(relative_time(t.end_us - t.placed_us)) + "</span></div>\n";
  out += step_rows(t, s) + breaker_rows(t, s) + "</div>\n";
  out += "<h2 style=\"font-size:16px\">events</h2>\n" + event_table(t);
  out += "<p class=\"meta\">written by keel-replay show --html</p>\n</body></html>\n";
  return out;
}

} // namespace keel::replay

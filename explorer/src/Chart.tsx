import { useEffect, useRef } from "react";
import uPlot from "uplot";

export type Series = { label: string; color: string; dash?: number[] };

/** A uPlot line chart; `data[0]` is x (Unix seconds), then one array per series. */
export function Chart({ data, series, height = 180, testId }: { data: (number | null)[][]; series: Series[]; height?: number; testId?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join("|");
  useEffect(() => {
    if (!box.current) return;
    const options: uPlot.Options = {
      width: box.current.clientWidth || 600,
      height,
      legend: { show: true },
      scales: { x: { time: true } },
      axes: [{ stroke: "#9aa4b2", grid: { stroke: "#2a3140" } }, { stroke: "#9aa4b2", grid: { stroke: "#2a3140" } }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, dash: s.dash, points: { show: false } }))],
    };
    plot.current = new uPlot(options, data as uPlot.AlignedData, box.current);
    const resize = () => plot.current?.setSize({ width: box.current?.clientWidth || 600, height });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.current?.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series change; data goes through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);
  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);
  return <div className="chart" ref={box} data-testid={testId} />;
}

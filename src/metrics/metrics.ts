/**
 * A small Prometheus registry: counters and histograms kept in process, gauges read from the
 * database at scrape time (so every replica reports the shared truth, e.g. outbox lag).
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",");
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** A monotonically increasing counter with labels. */
export class Counter {
  #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  /** Adds `value` (default 1) to the series with `labels`. */
  inc(labels: Labels = {}, value = 1): void {
    const key = labelKey(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + value);
  }
  /** Creates the series with `labels` at zero if it is missing, so it is scraped before use. */
  init(labels: Labels = {}): void {
    const key = labelKey(labels);
    if (!this.#values.has(key)) this.#values.set(key, 0);
  }
  /** Current value of one series (tests). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [key, value] of this.#values) {
      lines.push(`${this.name}${key ? `{${key}}` : ""} ${value}`);
    }
    return lines.join("\n");
  }
}

/** A histogram with fixed buckets. */
export class Histogram {
  #series = new Map<string, { buckets: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly bounds: number[]) {}
  /** Records one observation. */
  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    this.bounds.forEach((bound, i) => {
      if (value <= bound) series.buckets[i]!++;
    });
    series.sum += value;
    series.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, series] of this.#series) {
      const prefix = key ? `${key},` : "";
      this.bounds.forEach((bound, i) =>
        lines.push(`${this.name}_bucket{${prefix}le="${bound}"} ${series.buckets[i]}`)
      );
      lines.push(`${this.name}_bucket{${prefix}le="+Inf"} ${series.count}`);
      lines.push(`${this.name}_sum${key ? `{${key}}` : ""} ${series.sum}`);
      lines.push(`${this.name}_count${key ? `{${key}}` : ""} ${series.count}`);
    }
    return lines.join("\n");
  }
}

/** A gauge whose samples are read when scraped. */
export interface GaugeSource {
  name: string;
  help: string;
  collect(): Promise<{ labels?: Labels; value: number }[]>;
}

/** The registry `/metrics` renders. */
export class Metrics {
  readonly counters = new Map<string, Counter>();
  readonly histograms = new Map<string, Histogram>();
  readonly gauges: GaugeSource[] = [];

  /** Returns the counter `name`, creating it on first use. */
  counter(name: string, help: string): Counter {
    let counter = this.counters.get(name);
    if (!counter) {
      counter = new Counter(name, help);
      this.counters.set(name, counter);
    }
    return counter;
  }

  /** Returns the histogram `name`, creating it on first use. */
  histogram(name: string, help: string, bounds: number[]): Histogram {
    let histogram = this.histograms.get(name);
    if (!histogram) {
      histogram = new Histogram(name, help, bounds);
      this.histograms.set(name, histogram);
    }
    return histogram;
  }

  /** Adds a gauge read at scrape time. */
  gauge(source: GaugeSource): void {
    this.gauges.push(source);
  }

  /** Renders the Prometheus text exposition format. */
  async render(): Promise<string> {
    const parts: string[] = [];
    for (const counter of this.counters.values()) parts.push(counter.render());
    for (const histogram of this.histograms.values()) parts.push(histogram.render());
    for (const gauge of this.gauges) {
      const lines = [`# HELP ${gauge.name} ${gauge.help}`, `# TYPE ${gauge.name} gauge`];
      try {
        for (const sample of await gauge.collect()) {
          const key = labelKey(sample.labels ?? {});
          lines.push(`${gauge.name}${key ? `{${key}}` : ""} ${sample.value}`);
        }
      } catch {
        // A scrape during a database outage still returns the in-process series.
      }
      parts.push(lines.join("\n"));
    }
    return parts.join("\n") + "\n";
  }
}

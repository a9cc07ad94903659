// The lines of a followed log, kept outside React state so that a burst of thousands of
// lines costs one render per animation frame, not one per line.

export interface ViewLine {
  /** The line's id in the deployment log (the SSE `id:`), or a running number. */
  id: number;
  stream: string;
  line: string;
}

export class LogBuffer {
  readonly lines: ViewLine[] = [];
  /** The highest id taken: a reconnected stream that repeats lines cannot duplicate them. */
  lastId = 0;
  /** The deployment's final status once the `end` event came. */
  ended: string | null = null;
  private seq = 0;

  /** `source`: the stream the lines come from (a new stream gets a new buffer). */
  constructor(readonly source: string | null = null) {}

  /** Adds a line; false (and nothing added) when its id was already seen. */
  push(line: { id?: number; stream: string; line: string }): boolean {
    if (line.id !== undefined) {
      if (line.id <= this.lastId) return false;
      this.lastId = line.id;
      this.lines.push({ id: line.id, stream: line.stream, line: line.line });
    } else {
      this.lines.push({ id: ++this.seq, stream: line.stream, line: line.line });
    }
    return true;
  }

  end(status: string) {
    this.ended = status;
  }
}

import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import { Sparkline, sparkPath } from "./Sparkline";

describe("Sparkline", () => {
  it("breaks the line where a value is unknown", () => {
    const d = sparkPath([null, 1, 2, null, 3]);
    expect(d.match(/M/g)).toHaveLength(2);
    expect(sparkPath([null, null])).toBe("");
  });

  it("is an image named by its latest value, with the range as hidden text", () => {
    render(<Sparkline values={[null, 5, 12.5]} label="CPU use: 12.5 % of one CPU" format={(v) => `${v} %`} />);
    expect(screen.getByRole("img", { name: "CPU use: 12.5 % of one CPU" })).toBeTruthy();
    expect(screen.getByText("Over the last 2 readings: lowest 5 %, highest 12.5 %.")).toBeTruthy();
  });
});

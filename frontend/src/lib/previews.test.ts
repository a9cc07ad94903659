import { describe, expect, it } from "vitest";
import { envChanged, envOf, envProblems, newRow, previewValuesOf, previewsBodyOf } from "./previews";

const stored = previewValuesOf({
  enabled: true,
  domain_template: "{app}-{number}.preview.example.com",
  limit: 3,
  forks: false,
  drafts: true,
  env_keys: ["API_URL", "TOKEN"],
});

describe("preview settings", () => {
  it("shows stored variables by name only, and sends none back when they were left alone", () => {
    expect(stored.env.map((r) => [r.key, r.value])).toEqual([
      ["API_URL", null],
      ["TOKEN", null],
    ]);
    expect(envChanged(stored.env, stored.env_keys)).toBe(false);
    // An empty row added and left empty changes nothing either.
    expect(envChanged([...stored.env, newRow()], stored.env_keys)).toBe(false);
    expect(previewsBodyOf(stored)).toEqual({
      enabled: true,
      domain_template: "{app}-{number}.preview.example.com",
      limit: 3,
      forks: false,
      drafts: true,
    });
  });

  it("sends the whole set once a variable is added, and asks for the stored values again", () => {
    const rows = [...stored.env, { ...newRow(), key: "DEBUG", value: "1" }];
    expect(envChanged(rows, stored.env_keys)).toBe(true);
    const problems = envProblems(rows);
    expect([...problems.keys()]).toEqual([rows[0]!.id, rows[1]!.id]);
    expect(problems.get(rows[0]!.id)).toMatch(/Type its value again/);
    const typed = rows.map((r) => (r.value === null ? { ...r, value: `new ${r.key}` } : r));
    expect(envProblems(typed).size).toBe(0);
    expect(envOf(typed)).toEqual({ API_URL: "new API_URL", TOKEN: "new TOKEN", DEBUG: "1" });
  });

  it("removing every variable clears them with an empty map", () => {
    const v = { ...stored, env: [] };
    expect(envChanged(v.env, v.env_keys)).toBe(true);
    expect(previewsBodyOf(v).env).toEqual({});
  });

  it("finds a row without a name and a name given twice", () => {
    const a = { ...newRow(), key: "", value: "x" };
    const b = { ...newRow(), key: "A", value: "1" };
    const c = { ...newRow(), key: " A ", value: "2" };
    const problems = envProblems([a, b, c]);
    expect(problems.get(a.id)).toMatch(/name/);
    expect(problems.has(b.id)).toBe(false);
    expect(problems.get(c.id)).toBe("A is given twice.");
  });

  it("an empty template means the default, and a limit that is not a number is left for the API to name", () => {
    const body = previewsBodyOf({ ...stored, domain_template: "  ", limit: "many" });
    expect(body.domain_template).toBe("pr-{number}.{domain}");
    expect(body.limit).toBe("many");
  });
});

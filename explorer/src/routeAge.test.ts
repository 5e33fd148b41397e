import { describe, expect, it } from "vitest";
import { age } from "./views/Routes";

describe("route age", () => {
  it("reads in the largest whole unit", () => {
    expect(age(null)).toBe("since start");
    expect(age(12_400)).toBe("12 s");
    expect(age(180_000)).toBe("3 min");
    expect(age(7_200_000)).toBe("2 h");
  });
});

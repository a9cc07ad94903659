import { useEffect } from "react";
import { NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, get, type Session } from "@/lib/api";
import { useLiveEvents } from "@/lib/events";
import { Button } from "@/components/ui/button";
import { cn } from "@/lib/utils";

const NAV = [
  { to: "/apps", label: "Apps" },
  { to: "/databases", label: "Databases" },
  { to: "/notifications", label: "Notifications" },
  { to: "/tokens", label: "Tokens" },
  { to: "/system", label: "System" },
];

/** The frame of every signed-in page: navigation, sign-out, and the live event stream. A
 * missing or ended session sends the reader to the sign-in page. */
export function Layout() {
  const navigate = useNavigate();
  const location = useLocation();
  const client = useQueryClient();
  const session = useQuery({ queryKey: ["session"], queryFn: () => get<Session>("/api/session"), retry: false });
  const unauthorized = session.error instanceof ApiError && session.error.status === 401;

  useEffect(() => {
    if (unauthorized) {
      const next = location.pathname + location.search;
      navigate(`/signin?next=${encodeURIComponent(next)}`, { replace: true });
    }
  }, [unauthorized, navigate, location.pathname, location.search]);

  const signOut = useMutation({
    mutationFn: () => api<void>("DELETE", "/api/session"),
    onSettled: () => {
      client.clear();
      navigate("/signin", { replace: true });
    },
  });

  if (session.isPending || unauthorized) {
    return <p className="p-6 text-sm text-muted-foreground">Loading…</p>;
  }
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-background focus:p-2">
        Skip to content
      </a>
      <header className="border-b">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
          <NavLink to="/apps" className="flex items-center gap-2 font-semibold">
            <img src="/favicon.svg" alt="" className="h-6 w-6" />
            Rivetr
          </NavLink>
          <nav aria-label="Main" className="order-3 flex w-full flex-wrap gap-1 sm:order-none sm:w-auto">
            {NAV.map((n) => (
              <NavLink
                key={n.to}
                to={n.to}
                className={({ isActive }) =>
                  cn(
                    "rounded-md px-3 py-1.5 text-sm font-medium hover:bg-accent focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-ring",
                    isActive && "bg-secondary",
                  )
                }
              >
                {n.label}
              </NavLink>
            ))}
          </nav>
          <div className="ml-auto flex items-center gap-3">
            <LiveDot />
            <span className="hidden text-sm text-muted-foreground sm:inline" title="The token this session was opened with">
              {session.data?.token_name}
            </span>
            <Button variant="outline" size="sm" onClick={() => signOut.mutate()} disabled={signOut.isPending}>
              Sign out
            </Button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-6xl px-4 py-6">
        <Outlet />
      </main>
    </div>
  );
}

function LiveDot() {
  const connected = useLiveEvents();
  return (
    <span className="flex items-center gap-1.5 text-xs text-muted-foreground" data-live={connected ? "on" : "off"}>
      <span aria-hidden="true" className={cn("h-2 w-2 rounded-full", connected ? "bg-success" : "bg-muted-foreground")} />
      {connected ? "Live" : "Reconnecting"}
    </span>
  );
}

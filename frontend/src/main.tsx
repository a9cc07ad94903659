import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createBrowserRouter, Navigate, RouterProvider } from "react-router";
import { ApiError } from "@/lib/api";
import { Layout } from "@/pages/Layout";
import { SignIn } from "@/pages/SignIn";
import { AppsList } from "@/pages/AppsList";
import { NotFound } from "@/pages/NotFound";
import "./index.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // Changes arrive through the event stream; no polling, no refetch on every focus.
      staleTime: 30_000,
      refetchOnWindowFocus: false,
      retry: (n, e) => !(e instanceof ApiError && e.status < 500) && n < 2,
    },
  },
});

const router = createBrowserRouter([
  { path: "/signin", element: <SignIn /> },
  {
    path: "/",
    element: <Layout />,
    children: [
      { index: true, element: <Navigate to="/apps" replace /> },
      { path: "apps", element: <AppsList /> },
      // The other pages load when first visited: the first page sends less JavaScript.
      { path: "apps/new", lazy: async () => ({ Component: (await import("@/pages/NewApp")).NewApp }) },
      {
        path: "apps/:app",
        lazy: async () => ({ Component: (await import("@/pages/AppPage")).AppPage }),
        children: [
          { index: true, lazy: async () => ({ Component: (await import("@/pages/AppPage")).AppOverview }) },
          { path: "settings", lazy: async () => ({ Component: (await import("@/pages/AppSettings")).AppSettings }) },
          { path: "env", lazy: async () => ({ Component: (await import("@/pages/AppEnv")).AppEnv }) },
          { path: "databases", lazy: async () => ({ Component: (await import("@/pages/AppLinks")).AppLinks }) },
          { path: "webhook", lazy: async () => ({ Component: (await import("@/pages/AppWebhook")).AppWebhook }) },
          { path: "logs", lazy: async () => ({ Component: (await import("@/pages/AppLogs")).AppLogs }) },
        ],
      },
      { path: "databases", lazy: async () => ({ Component: (await import("@/pages/DatabasesList")).DatabasesList }) },
      { path: "databases/new", lazy: async () => ({ Component: (await import("@/pages/NewDatabase")).NewDatabase }) },
      { path: "databases/:db", lazy: async () => ({ Component: (await import("@/pages/DatabasePage")).DatabasePage }) },
      { path: "deployments/:id", lazy: async () => ({ Component: (await import("@/pages/DeploymentPage")).DeploymentPage }) },
      { path: "notifications", lazy: async () => ({ Component: (await import("@/pages/Notifications")).Notifications }) },
      { path: "tokens", lazy: async () => ({ Component: (await import("@/pages/Tokens")).Tokens }) },
      { path: "system", lazy: async () => ({ Component: (await import("@/pages/System")).SystemPage }) },
      { path: "*", element: <NotFound /> },
    ],
  },
]);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
);

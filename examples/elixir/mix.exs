defmodule IommapExample.MixProject do
  use Mix.Project

  # iommap is a rebar3 project: mix builds it (Go engine included, through
  # its pre-compile hook) with the rebar3 named by MIX_REBAR3.
  def project do
    [app: :iommap_example, version: "0.1.0", elixir: "~> 1.14", deps: deps()]
  end

  def application, do: [extra_applications: [:logger]]

  defp deps, do: [{:iommap, path: "../../erlang", manager: :rebar3}]
end

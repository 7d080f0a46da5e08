// The library's layering, checked on the compiled code: the allowed folder graph of src/Kmem written once, and a
// test that fails when a type of one folder references a type of a folder it may not use (calls flow downward;
// docs/architecture.md draws the same layers). Types are mapped to folders by their source files (TypeFolderGraph).
// What the compiler folds into the caller leaves no reference in the assembly (the use of a constant such as
// `Machine.PageSize`, a nameof()): for the machine, the composition root, the sources below it are also searched
// for its name outside comments and literals.
namespace Kmem.Tests;

public class LayeringTests
{
    /// <summary>
    /// The allowed folder graph: each folder of src/Kmem and the folders its types may use, bottom up. Core, the
    /// allocators and the users of memory below the kernel context; the drivers over the context; the views over
    /// all of them; Machine, the composition root, over everything; the clients of its public API on top.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, string[]> MayUse = new Dictionary<string, string[]>
    {
        ["Core"] = [],
        ["Physical"] = ["Core"],
        ["Paging"] = ["Core", "Physical"],
        ["Slab"] = ["Core", "Physical", "Paging"],
        ["Cma"] = ["Core", "Physical", "Paging"],
        ["Vmalloc"] = ["Core", "Physical", "Paging", "Slab"],
        ["Highmem"] = ["Core", "Physical", "Paging"],
        ["Dma"] = ["Core", "Physical", "Paging", "Cma", "Vmalloc", "Highmem"],
        ["DmaHeaps"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma"],
        ["Mempool"] = ["Core", "Physical", "Paging", "Slab"],
        ["Kernel"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps"],
        ["Rockchip"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Kernel"],
        ["Drm"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Kernel"],
        ["Vb2"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Kernel"],
        ["Rtnet"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Kernel"],
        ["Diagnostics"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Mempool", "Kernel",
                           "Rockchip", "Drm", "Vb2", "Rtnet"],
        ["Boot"] = ["Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Mempool", "Kernel",
                    "Rockchip", "Drm", "Vb2", "Rtnet", "Diagnostics"],
        ["Machine"] = ["Boot", "Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Mempool", "Kernel",
                       "Rockchip", "Drm", "Vb2", "Rtnet", "Diagnostics"],
        ["Interop"] = ["Boot", "Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Mempool", "Kernel",
                       "Rockchip", "Drm", "Vb2", "Rtnet", "Diagnostics", "Machine"],
        ["Scenarios"] = ["Boot", "Core", "Physical", "Paging", "Slab", "Cma", "Vmalloc", "Highmem", "Dma", "DmaHeaps", "Mempool", "Kernel",
                         "Rockchip", "Drm", "Vb2", "Rtnet", "Diagnostics", "Machine"],
    };

    /// <summary>
    /// Types allowed one forbidden folder for now (with their nested and compiler-generated types), each with the reason
    /// and the change that removes it. None today: keep it that way.
    /// </summary>
    internal static readonly (string Type, string Folder)[] Exceptions = [];

    private static readonly Lazy<TypeFolderGraph> Graph = new(() => TypeFolderGraph.Load(typeof(Machine).Assembly.Location, "/src/Kmem/"));

    /// <summary>The edges the table forbids, less the named exceptions.</summary>
    internal static IReadOnlyList<TypeEdge> Violations(TypeFolderGraph graph, IReadOnlyDictionary<string, string[]> mayUse,
        IReadOnlyList<(string Type, string Folder)> exceptions) =>
        [.. graph.Edges.Where(e => !(mayUse.TryGetValue(e.FromFolder, out var ok) && ok.Contains(e.ToFolder))
                                   && !exceptions.Any(x => Covers(x, e)))];

    private static bool Covers((string Type, string Folder) exception, TypeEdge e) =>
        e.ToFolder == exception.Folder && (e.FromType == exception.Type || e.FromType.StartsWith(exception.Type + "+", StringComparison.Ordinal));

    private static string Describe(IEnumerable<TypeEdge> edges) =>
        string.Join("\n", edges.Select(e => $"  {e.FromFolder}/{e.FromType} -> {e.ToFolder}/{e.ToType}"));

    [Fact]
    public void EveryTypeComesFromOneFolderOfTheTable()
    {
        var g = Graph.Value;
        Assert.True(g.Problems.Count == 0, "types without one folder:\n" + string.Join("\n", g.Problems));
        // Sanity of the mapping: types of known files land in their folders.
        Assert.Equal("Machine", g.FolderOf["Kmem.Machine"]);
        Assert.Equal("Core", g.FolderOf["Kmem.Core.CallSite"]);
        Assert.Equal("Core", g.FolderOf["Kmem.Arch"]);                          // an enum: found through the PDB's type documents
        Assert.Equal("Kernel", g.FolderOf["Kmem.Kernel.KernelContext"]);
        Assert.Equal("Slab", g.FolderOf["Kmem.SlabCache"]);                     // a partial type over several files of one folder
        var unknown = g.FolderOf.Values.Where(f => f != TypeFolderGraph.CompilerFolder && !MayUse.ContainsKey(f)).Distinct().Order().ToArray();
        Assert.True(unknown.Length == 0, "folders missing from the table: " + string.Join(", ", unknown));
    }

    /// <summary>
    /// Internal types live in the namespace of their folder (Kmem.Paging for Paging/, Kmem.Scenarios.Steps for
    /// Scenarios/Steps/); public types may stay in Kmem, so that users need one using.
    /// </summary>
    [Fact]
    public void InternalTypesAreInTheNamespaceOfTheirFolder()
    {
        var g = Graph.Value;
        var wrong = new List<string>();
        foreach (var t in typeof(Machine).Assembly.GetTypes())
        {
            if (t.IsNested || t.IsPublic || t.Namespace is null || !t.Namespace.StartsWith("Kmem", StringComparison.Ordinal)) continue;
            if (t.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute), false)) continue;
            if (!g.FolderOf.TryGetValue(t.FullName!, out var folder) || folder == TypeFolderGraph.CompilerFolder) continue;
            string expected = "Kmem." + folder;
            if (t.Namespace != expected && !t.Namespace.StartsWith(expected + ".", StringComparison.Ordinal))
                wrong.Add($"{t.FullName} (in {folder}/)");
        }
        Assert.True(wrong.Count == 0, "internal types outside their folder's namespace:\n" + string.Join("\n", wrong.Order()));
        Assert.Equal("Paging", g.FolderOf["Kmem.Paging.PageAllocator"]);
    }

    [Fact]
    public void NoFolderUsesOneItMayNot()
    {
        var bad = Violations(Graph.Value, MayUse, Exceptions);
        Assert.True(bad.Count == 0, $"{bad.Count} references against the layering:\n{Describe(bad)}");
    }

    [Fact]
    public void EveryExceptionIsStillNeeded()
    {
        var g = Graph.Value;
        var stale = Exceptions.Where(x => !g.Edges.Any(e => Covers(x, e) && !MayUse[e.FromFolder].Contains(e.ToFolder))).ToArray();
        Assert.True(stale.Length == 0, "exceptions no longer needed (remove them): " + string.Join(", ", stale));
    }

    [Fact]
    public void TheCheckReportsAForbiddenEdge()
    {
        var g = Graph.Value;
        // A page-allocator type naming the machine, a DRM type naming RTnet (sideways), and, under a pretend exception
        // for the VB2 queue towards the machine, another VB2 type naming the machine beside it.
        (string, string)[] exceptions = [("Kmem.Vb2Queue", "Machine")];
        var upward = new TypeEdge("Kmem.Paging.Zone", "Paging", "Kmem.Machine", "Machine");
        var excepted = new TypeEdge("Kmem.Vb2Queue", "Vb2", "Kmem.Machine", "Machine");
        var besideException = new TypeEdge("Kmem.Vb2DmaSg", "Vb2", "Kmem.Machine", "Machine");
        var sideways = new TypeEdge("Kmem.DrmDevice", "Drm", "Kmem.RtnetStack", "Rtnet");
        var real = Violations(g, MayUse, exceptions);
        var found = Violations(g.With(upward).With(excepted).With(besideException).With(sideways), MayUse, exceptions).Except(real);
        Assert.Equal(new[] { besideException, sideways, upward }.OrderBy(e => e.FromType, StringComparer.Ordinal),
            found.OrderBy(e => e.FromType, StringComparer.Ordinal));
        // The excepted type is let through only towards its one folder.
        var otherFolder = new TypeEdge("Kmem.Vb2Queue", "Vb2", "Kmem.Diagnostics.MemoryMap", "Diagnostics");
        Assert.Equal(new[] { otherFolder }, Violations(g.With(otherFolder), MayUse, exceptions).Except(real));
    }

    [Fact]
    public void NoFolderBelowTheMachineNamesItInCode()
    {
        var g = Graph.Value;
        var found = new List<string>();
        foreach (var (folder, files) in g.SourceFiles)
        {
            if (!MayUse.TryGetValue(folder, out var uses) || uses.Contains("Machine") || folder == "Machine") continue;
            foreach (var file in files)
            {
                Assert.True(File.Exists(file), $"{file}: the source named by the PDB is not here");
                if (ExceptedFiles.Contains(Path.GetFileNameWithoutExtension(file))) continue;
                found.AddRange(CodeWords.LinesNaming(File.ReadAllText(file), "Machine").Select(l => $"{folder}/{Path.GetFileName(file)}:{l}"));
            }
        }
        Assert.True(g.SourceFiles.ContainsKey("Dma") && g.SourceFiles["Dma"].Length > 0, "no sources found for Dma/");
        Assert.True(found.Count == 0, "code below the machine names it:\n" + string.Join("\n", found));
    }

    /// <summary>The files of the excepted types (each type is in the file named after it).</summary>
    private static readonly HashSet<string> ExceptedFiles = [.. Exceptions.Select(x => x.Type[(x.Type.LastIndexOf('.') + 1)..])];

    [Fact]
    public void TheWordSearchSeesCodeOnly()
    {
        const string source = """"
            // Machine in a comment
            /* Machine
               in a block */ var a = "Machine" + @"Machine ""x""" + 'M';
            var b = $"{nameof(Machine)} and {{Machine}}";
            int c = Machine.PageSize; string MachineName = "";
            """";
        Assert.Equal(new[] { 4, 5 }, CodeWords.LinesNaming(source, "Machine"));
    }

    [Fact]
    public void TheTableIsLayered()
    {
        // No folder reaches itself through the table: the graph is acyclic, so "below" means something.
        foreach (var start in MayUse.Keys)
        {
            var seen = new HashSet<string>();
            var todo = new Stack<string>(MayUse[start]);
            while (todo.TryPop(out var f))
            {
                Assert.True(f != start, $"{start} reaches itself through the table");
                Assert.True(MayUse.ContainsKey(f), $"{start} may use {f}, which the table does not list");
                if (seen.Add(f)) foreach (var next in MayUse[f]) todo.Push(next);
            }
        }
    }
}

// Which source folder of the library each of its types comes from, and which of its other types each one
// references: read from Kmem.dll's metadata and IL and from the portable PDB beside it. Namespaces do not follow
// folders in this codebase, so a type's folder is the folder of the files its methods were compiled from (and, for
// a type without method bodies, the files Roslyn records for it in the PDB). The layering test checks the result.
using System.Collections.Immutable;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Kmem.Tests;

/// <summary>A reference from one type of the library to another, with the folders both come from.</summary>
internal readonly record struct TypeEdge(string FromType, string FromFolder, string ToType, string ToFolder);

/// <summary>The library's types, their folders, and the references between types of different folders.</summary>
internal sealed class TypeFolderGraph
{
    /// <summary>The pseudo-folder of types the compiler emits without source (<c>&lt;PrivateImplementationDetails&gt;</c>, embedded attributes).</summary>
    public const string CompilerFolder = "(compiler)";

    /// <summary>The PDB's custom debug information kind for the documents of a type (TypeDefinitionDocuments).</summary>
    private static readonly Guid TypeDefinitionDocuments = new("932E74BC-DBA9-4478-8D46-0F32A7BAB3D3");

    /// <summary>Each IL opcode's operand kind, from the runtime's own opcode table.</summary>
    private static readonly Dictionary<ushort, OperandType> Operands = typeof(OpCodes).GetFields()
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => unchecked((ushort)o.Value), o => o.OperandType);

    private TypeFolderGraph(IReadOnlyDictionary<string, string> folderOf, IReadOnlyList<string> problems, IReadOnlyList<TypeEdge> edges,
        IReadOnlyDictionary<string, string[]> sourceFiles)
    {
        FolderOf = folderOf;
        Problems = problems;
        Edges = edges;
        SourceFiles = sourceFiles;
    }

    /// <summary>Each type (full name, nested types with '+') and the folder under the library's source root it comes from.</summary>
    public IReadOnlyDictionary<string, string> FolderOf { get; }

    /// <summary>Types that map to no folder, or to more than one.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>Every reference between two types of different folders (compiler-generated targets left out).</summary>
    public IReadOnlyList<TypeEdge> Edges { get; }

    /// <summary>Each folder and the source files compiled from it, as the PDB names them (paths of the build).</summary>
    public IReadOnlyDictionary<string, string[]> SourceFiles { get; }

    /// <summary>The same graph with one more edge (to prove that a check over it can fail).</summary>
    public TypeFolderGraph With(TypeEdge extra) => new(FolderOf, Problems, [.. Edges, extra], SourceFiles);

    /// <summary>Reads the assembly at <paramref name="assemblyPath"/> and the portable PDB beside it.</summary>
    /// <summary>
    /// A PDB document's path on this disk: a deterministic CI build (ContinuousIntegrationBuild) maps the repository
    /// root to "/_/", which is found again as the nearest folder above the assembly that holds the solution file.
    /// </summary>
    private static string OnDisk(string document, string assemblyPath)
    {
        if (!document.StartsWith("/_/", StringComparison.Ordinal)) return document;
        for (var dir = new DirectoryInfo(Path.GetDirectoryName(Path.GetFullPath(assemblyPath))!); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Kmem.slnx"))) return Path.Combine(dir.FullName, document[3..]);
        return document;
    }

    public static TypeFolderGraph Load(string assemblyPath, string sourceRootMarker)
    {
        string pdbPath = Path.ChangeExtension(assemblyPath, ".pdb");
        using var pe = new PEReader(File.OpenRead(assemblyPath));
        using var pdbProvider = MetadataReaderProvider.FromPortablePdbStream(File.OpenRead(pdbPath));
        var md = pe.GetMetadataReader();
        var pdb = pdbProvider.GetMetadataReader();

        // 1. The source files of each type.
        var files = new Dictionary<TypeDefinitionHandle, HashSet<string>>();
        HashSet<string> FilesOf(TypeDefinitionHandle t) => files.TryGetValue(t, out var s) ? s : files[t] = [];
        foreach (var mh in md.MethodDefinitions)
        {
            var info = pdb.GetMethodDebugInformation(mh.ToDebugInformationHandle());
            var set = FilesOf(md.GetMethodDefinition(mh).GetDeclaringType());
            if (!info.Document.IsNil) set.Add(pdb.GetString(pdb.GetDocument(info.Document).Name));
            if (info.SequencePointsBlob.IsNil) continue;
            foreach (var sp in info.GetSequencePoints())
                if (!sp.Document.IsNil) set.Add(pdb.GetString(pdb.GetDocument(sp.Document).Name));
        }
        foreach (var th in md.TypeDefinitions)
            foreach (var ch in pdb.GetCustomDebugInformation(th))
            {
                var cdi = pdb.GetCustomDebugInformation(ch);
                if (pdb.GetGuid(cdi.Kind) != TypeDefinitionDocuments) continue;
                var blob = pdb.GetBlobReader(cdi.Value);
                while (blob.RemainingBytes > 0)
                    FilesOf(th).Add(pdb.GetString(pdb.GetDocument(MetadataTokens.DocumentHandle(blob.ReadCompressedInteger())).Name));
            }

        // 2. The folder of each type: the one folder of its source files, else its declaring type's, else the compiler's.
        var problems = new List<string>();
        var folders = new Dictionary<TypeDefinitionHandle, string>();
        string? FolderOfType(TypeDefinitionHandle th)
        {
            if (folders.TryGetValue(th, out var known)) return known;
            var td = md.GetTypeDefinition(th);
            var inSource = FilesOf(th).Select(f => FolderOfFile(f, sourceRootMarker)).OfType<string>().Distinct().ToArray();
            string? folder = inSource.Length switch
            {
                1 => inSource[0],
                > 1 => null,
                _ => td.IsNested ? FolderOfType(td.GetDeclaringType())
                    : IsCompilerEmitted(md, td) ? CompilerFolder : null,
            };
            if (inSource.Length > 1) problems.Add($"{NameOf(md, th)} is compiled from several folders: {string.Join(", ", inSource.Order())}");
            else if (folder is null) problems.Add($"{NameOf(md, th)} maps to no folder (no source file under {sourceRootMarker})");
            return folders[th] = folder ?? "?";
        }
        var folderOf = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var th in md.TypeDefinitions)
        {
            if (md.GetString(md.GetTypeDefinition(th).Name) == "<Module>") continue;
            folderOf[NameOf(md, th)] = FolderOfType(th)!;
        }

        // 3. The references of each type, from its metadata and its methods' IL.
        var edges = new HashSet<TypeEdge>();
        foreach (var th in md.TypeDefinitions)
        {
            if (md.GetString(md.GetTypeDefinition(th).Name) == "<Module>") continue;
            string from = FolderOfType(th)!;
            if (from == CompilerFolder) continue;
            foreach (var target in References(md, pe, th))
            {
                string to = FolderOfType(target)!;
                if (to != from && to != CompilerFolder) edges.Add(new TypeEdge(NameOf(md, th), from, NameOf(md, target), to));
            }
        }
        var sources = pdb.Documents.Select(d => OnDisk(pdb.GetString(pdb.GetDocument(d).Name), assemblyPath))
            .Select(f => (File: f, Folder: FolderOfFile(f, sourceRootMarker))).Where(x => x.Folder is { Length: > 0 })
            .GroupBy(x => x.Folder!).ToDictionary(g => g.Key, g => g.Select(x => x.File).Order(StringComparer.Ordinal).ToArray());
        return new TypeFolderGraph(folderOf, problems, [.. edges.OrderBy(e => e.FromType, StringComparer.Ordinal).ThenBy(e => e.ToType, StringComparer.Ordinal)],
            sources);
    }

    /// <summary>The folder right under the source root that holds <paramref name="file"/>, or null for a file outside it (generated code).</summary>
    private static string? FolderOfFile(string file, string marker)
    {
        string path = file.Replace('\\', '/');
        int at = path.LastIndexOf(marker, StringComparison.Ordinal);
        if (at < 0) return null;
        string rest = path[(at + marker.Length)..];
        int slash = rest.IndexOf('/');
        if (slash <= 0) return "";                                        // a file right in the root: no folder
        string folder = rest[..slash];
        return folder is "obj" or "bin" ? null : folder;
    }

    /// <summary>True for a top-level type that the compiler emits on its own (its name starts with '&lt;', or it is an embedded attribute).</summary>
    private static bool IsCompilerEmitted(MetadataReader md, TypeDefinition td)
    {
        if (md.GetString(td.Name).StartsWith('<')) return true;
        foreach (var ah in td.GetCustomAttributes())
        {
            var ctor = md.GetCustomAttribute(ah).Constructor;
            EntityHandle owner = ctor.Kind switch
            {
                HandleKind.MethodDefinition => md.GetMethodDefinition((MethodDefinitionHandle)ctor).GetDeclaringType(),
                HandleKind.MemberReference => md.GetMemberReference((MemberReferenceHandle)ctor).Parent,
                _ => default,
            };
            string name = owner.Kind switch
            {
                HandleKind.TypeDefinition => md.GetString(md.GetTypeDefinition((TypeDefinitionHandle)owner).Name),
                HandleKind.TypeReference => md.GetString(md.GetTypeReference((TypeReferenceHandle)owner).Name),
                _ => "",
            };
            if (name is "CompilerGeneratedAttribute" or "EmbeddedAttribute") return true;
        }
        return false;
    }

    /// <summary>The full name of a type: namespace, dots, and '+' before a nested type's name.</summary>
    private static string NameOf(MetadataReader md, TypeDefinitionHandle th)
    {
        var td = md.GetTypeDefinition(th);
        if (td.IsNested) return NameOf(md, td.GetDeclaringType()) + "+" + md.GetString(td.Name);
        string ns = md.GetString(td.Namespace);
        return ns.Length == 0 ? md.GetString(td.Name) : ns + "." + md.GetString(td.Name);
    }

    /// <summary>Every type of the same assembly that <paramref name="th"/> names: base, interfaces, members' signatures, attributes, locals, IL operands, catch types.</summary>
    private static HashSet<TypeDefinitionHandle> References(MetadataReader md, PEReader pe, TypeDefinitionHandle th)
    {
        var found = new HashSet<TypeDefinitionHandle>();
        var td = md.GetTypeDefinition(th);
        void Entity(EntityHandle h) => AddEntity(md, h, found);
        void Attributes(CustomAttributeHandleCollection attrs)
        {
            foreach (var a in attrs) Entity(md.GetCustomAttribute(a).Constructor);
        }
        void GenericParameters(GenericParameterHandleCollection ps)
        {
            foreach (var p in ps)
                foreach (var c in md.GetGenericParameter(p).GetConstraints())
                    Entity(md.GetGenericParameterConstraint(c).Type);
        }

        if (!td.BaseType.IsNil) Entity(td.BaseType);
        foreach (var i in td.GetInterfaceImplementations()) Entity(md.GetInterfaceImplementation(i).Interface);
        Attributes(td.GetCustomAttributes());
        GenericParameters(td.GetGenericParameters());
        foreach (var fh in td.GetFields())
        {
            var f = md.GetFieldDefinition(fh);
            Collector.Field(f, found);
            Attributes(f.GetCustomAttributes());
        }
        foreach (var ph in td.GetProperties())
        {
            var p = md.GetPropertyDefinition(ph);
            Collector.Method(p.DecodeSignature(Collector.Instance, null), found);
            Attributes(p.GetCustomAttributes());
        }
        foreach (var eh in td.GetEvents())
        {
            var e = md.GetEventDefinition(eh);
            Entity(e.Type);
            Attributes(e.GetCustomAttributes());
        }
        foreach (var mh in td.GetMethods())
        {
            var m = md.GetMethodDefinition(mh);
            Collector.Method(m.DecodeSignature(Collector.Instance, null), found);
            Attributes(m.GetCustomAttributes());
            GenericParameters(m.GetGenericParameters());
            foreach (var parh in m.GetParameters()) Attributes(md.GetParameter(parh).GetCustomAttributes());
            if (m.RelativeVirtualAddress == 0) continue;
            var body = pe.GetMethodBody(m.RelativeVirtualAddress);
            if (!body.LocalSignature.IsNil)
                Collector.Each(md.GetStandaloneSignature(body.LocalSignature).DecodeLocalSignature(Collector.Instance, null), found);
            foreach (var region in body.ExceptionRegions)
                if (!region.CatchType.IsNil) Entity(region.CatchType);
            try
            {
                ScanIl(body.GetILReader(), Entity);
            }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException($"{NameOf(md, th)}.{md.GetString(m.Name)}: {e.Message}", e);
            }
        }
        return found;
    }

    /// <summary>Calls <paramref name="token"/> for every metadata token an instruction of the body names.</summary>
    private static void ScanIl(BlobReader il, Action<EntityHandle> token)
    {
        while (il.RemainingBytes > 0)
        {
            ushort code = il.ReadByte();
            if (code == 0xFE) code = (ushort)(0xFE00 | il.ReadByte());
            if (!Operands.TryGetValue(code, out var operand)) throw new InvalidOperationException($"unknown IL opcode 0x{code:x} at offset {il.Offset}");
            switch (operand)
            {
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: il.Offset += 1; break;
                case OperandType.InlineVar: il.Offset += 2; break;
                case OperandType.InlineI8 or OperandType.InlineR: il.Offset += 8; break;
                case OperandType.InlineSwitch:
                    int targets = il.ReadInt32();                             // (read before Offset: `Offset +=` would load it first)
                    il.Offset += 4 * targets;
                    break;
                case OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineSig or OperandType.InlineTok or OperandType.InlineType:
                    token(MetadataTokens.EntityHandle(il.ReadInt32()));
                    break;
                default: il.Offset += 4; break;                               // branch targets, int32, float32, strings
            }
        }
    }

    /// <summary>Adds the types of this assembly that a metadata entity names (a member's declaring type, a signature's types).</summary>
    private static void AddEntity(MetadataReader md, EntityHandle h, HashSet<TypeDefinitionHandle> found)
    {
        switch (h.Kind)
        {
            case HandleKind.TypeDefinition:
                found.Add((TypeDefinitionHandle)h);
                break;
            case HandleKind.TypeSpecification:
                found.UnionWith(md.GetTypeSpecification((TypeSpecificationHandle)h).DecodeSignature(Collector.Instance, null));
                break;
            case HandleKind.MethodDefinition:
                found.Add(md.GetMethodDefinition((MethodDefinitionHandle)h).GetDeclaringType());
                break;
            case HandleKind.FieldDefinition:
                found.Add(md.GetFieldDefinition((FieldDefinitionHandle)h).GetDeclaringType());
                break;
            case HandleKind.MemberReference:
                var mr = md.GetMemberReference((MemberReferenceHandle)h);
                AddEntity(md, mr.Parent, found);
                if (mr.GetKind() == MemberReferenceKind.Method) Collector.Method(mr.DecodeMethodSignature(Collector.Instance, null), found);
                else found.UnionWith(mr.DecodeFieldSignature(Collector.Instance, null));
                break;
            case HandleKind.MethodSpecification:
                var ms = md.GetMethodSpecification((MethodSpecificationHandle)h);
                AddEntity(md, ms.Method, found);
                Collector.Each(ms.DecodeSignature(Collector.Instance, null), found);
                break;
            case HandleKind.StandaloneSignature:
                var sig = md.GetStandaloneSignature((StandaloneSignatureHandle)h);
                if (sig.GetKind() == StandaloneSignatureKind.Method) Collector.Method(sig.DecodeMethodSignature(Collector.Instance, null), found);
                else Collector.Each(sig.DecodeLocalSignature(Collector.Instance, null), found);
                break;
        }
    }

    /// <summary>The assembly's own types a signature names (each decoded type is the list of them it contains).</summary>
    private sealed class Collector : ISignatureTypeProvider<ImmutableArray<TypeDefinitionHandle>, object?>
    {
        public static readonly Collector Instance = new();

        public static void Field(FieldDefinition f, HashSet<TypeDefinitionHandle> found) => found.UnionWith(f.DecodeSignature(Instance, null));
        public static void Method(MethodSignature<ImmutableArray<TypeDefinitionHandle>> sig, HashSet<TypeDefinitionHandle> found)
        {
            found.UnionWith(sig.ReturnType);
            foreach (var p in sig.ParameterTypes) found.UnionWith(p);
        }
        public static void Each(ImmutableArray<ImmutableArray<TypeDefinitionHandle>> types, HashSet<TypeDefinitionHandle> found)
        {
            foreach (var t in types) found.UnionWith(t);
        }

        public ImmutableArray<TypeDefinitionHandle> GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => [handle];
        public ImmutableArray<TypeDefinitionHandle> GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => [];
        public ImmutableArray<TypeDefinitionHandle> GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, context);
        public ImmutableArray<TypeDefinitionHandle> GetPrimitiveType(PrimitiveTypeCode typeCode) => [];
        public ImmutableArray<TypeDefinitionHandle> GetSZArrayType(ImmutableArray<TypeDefinitionHandle> elementType) => elementType;
        public ImmutableArray<TypeDefinitionHandle> GetArrayType(ImmutableArray<TypeDefinitionHandle> elementType, ArrayShape shape) => elementType;
        public ImmutableArray<TypeDefinitionHandle> GetByReferenceType(ImmutableArray<TypeDefinitionHandle> elementType) => elementType;
        public ImmutableArray<TypeDefinitionHandle> GetPointerType(ImmutableArray<TypeDefinitionHandle> elementType) => elementType;
        public ImmutableArray<TypeDefinitionHandle> GetPinnedType(ImmutableArray<TypeDefinitionHandle> elementType) => elementType;
        public ImmutableArray<TypeDefinitionHandle> GetGenericInstantiation(ImmutableArray<TypeDefinitionHandle> genericType, ImmutableArray<ImmutableArray<TypeDefinitionHandle>> typeArguments) =>
            [.. genericType, .. typeArguments.SelectMany(a => a)];
        public ImmutableArray<TypeDefinitionHandle> GetGenericTypeParameter(object? context, int index) => [];
        public ImmutableArray<TypeDefinitionHandle> GetGenericMethodParameter(object? context, int index) => [];
        public ImmutableArray<TypeDefinitionHandle> GetFunctionPointerType(MethodSignature<ImmutableArray<TypeDefinitionHandle>> signature) =>
            [.. signature.ReturnType, .. signature.ParameterTypes.SelectMany(p => p)];
        public ImmutableArray<TypeDefinitionHandle> GetModifiedType(ImmutableArray<TypeDefinitionHandle> modifier, ImmutableArray<TypeDefinitionHandle> unmodifiedType, bool isRequired) =>
            [.. modifier, .. unmodifiedType];
    }
}
